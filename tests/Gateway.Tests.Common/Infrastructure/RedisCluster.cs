using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A real Redis Cluster on 127.0.0.1: masters with one replica each, every node a <c>redis-server</c> (Debian package,
/// Redis 7) unpersisted in its own temporary folder, joined by <c>redis-cli --cluster create</c>. Tests kill a master
/// and wait for its replica to take over; everything is asked of the nodes through <c>redis-cli</c>.
/// </summary>
internal sealed class RedisCluster : IAsyncDisposable
{
    private const int SlotCount = 16384;
    private const int BusPortOffset = 10000; // Redis puts a node's cluster bus on its port + 10000

    // Redis announces none of the states waited on here (formed, failed over), so the waits poll, bounded by Wait.Timeout.
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(50);

    private readonly Node[] _nodes;

    private RedisCluster(Node[] nodes)
    {
        _nodes = nodes;
        Ports = [.. nodes.Select(n => n.Port)];
    }

    /// <summary>Every node's port, the masters <c>redis-cli</c> was given first; killed nodes stay listed.</summary>
    public IReadOnlyList<int> Ports { get; }

    /// <summary>The StackExchange.Redis connection string: every node, killed ones too.</summary>
    public string ConnectionString => string.Join(',', Ports.Select(p => string.Create(CultureInfo.InvariantCulture, $"127.0.0.1:{p}")));

    /// <summary>Starts <paramref name="masters"/> masters and as many replicas and returns once every node reports the
    /// cluster ok with all slots assigned and every replica's link to its master is up.</summary>
    /// <param name="nodeTimeout"><c>cluster-node-timeout</c>: how long a silent master takes to be failed over (1 s by default).</param>
    public static async Task<RedisCluster> StartAsync(int masters = 3, TimeSpan? nodeTimeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(masters, 3); // redis-cli --cluster create refuses fewer
        var timeoutMs = (long)(nodeTimeout ?? TimeSpan.FromSeconds(1)).TotalMilliseconds;
        var cluster = new RedisCluster([.. FreePortPairs(masters * 2).Select(port => new Node(port))]);
        try
        {
            await Task.WhenAll(cluster._nodes.Select(n => n.StartAsync(timeoutMs)));
            await cluster.CreateAsync();
            await UntilAsync(cluster.FormedAsync, "the cluster to form");
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>The ports of the masters a live node knows, failed ones (or ones this class killed) left out, in <see cref="Ports"/> order.</summary>
    public async Task<IReadOnlyList<int>> MasterPortsAsync()
    {
        var view = ParseNodes(await CommandAsync(AnyLive().Port, "CLUSTER", "NODES"));
        var masters = view.Where(n => n.Flags.Contains("master") && !IsFailing(n) && IsLive(n.Port)).Select(n => n.Port).ToHashSet();
        return [.. Ports.Where(masters.Contains)];
    }

    /// <summary>Kills a master outright (SIGKILL), the first of <see cref="MasterPortsAsync"/> unless
    /// <paramref name="port"/> names one, and returns its port. Its replica takes over after the node timeout.</summary>
    public async Task<int> KillMasterAsync(int? port = null)
    {
        var masters = await MasterPortsAsync();
        var target = port ?? (masters.Count > 0 ? masters[0] : throw new InvalidOperationException("no live master to kill"));
        if (!masters.Contains(target))
        {
            throw new ArgumentException($"{target} is not a live master (masters: {string.Join(", ", masters)})", nameof(port));
        }

        await _nodes.First(n => n.Port == target).KillAsync();
        return target;
    }

    /// <summary>Waits until every live node reports the cluster ok with all slots served, and no node this class killed
    /// still serves slots in any live node's view: a replica has taken over each killed master.</summary>
    public Task WaitSettledAsync() => UntilAsync(SettledAsync, "the cluster to settle");

    /// <summary>How many times the live nodes ran <paramref name="command"/> (<c>calls=</c> of <c>cmdstat_…</c> in
    /// <c>INFO commandstats</c>, summed) since they started or <see cref="ResetStatsAsync"/>. A subcommand reads
    /// <c>"cluster|info"</c>. Replication counts too: a master runs <c>replconf</c> once a second per replica (its ACK).</summary>
    public async Task<long> CommandCallsAsync(string command)
    {
        var key = "cmdstat_" + command.ToLowerInvariant();
        var counts = await Task.WhenAll(LiveNodes().Select(async node =>
        {
            var stats = Fields(await CommandAsync(node.Port, "INFO", "commandstats"));
            var calls = stats.GetValueOrDefault(key)?.Split(',').FirstOrDefault(f => f.StartsWith("calls=", StringComparison.Ordinal));
            return calls is null ? 0L : long.Parse(calls["calls=".Length..], CultureInfo.InvariantCulture);
        }));
        return counts.Sum();
    }

    /// <summary><c>CONFIG RESETSTAT</c> on every live node: command counts start again from zero.</summary>
    public Task ResetStatsAsync() => Task.WhenAll(LiveNodes().Select(n => CommandAsync(n.Port, "CONFIG", "RESETSTAT")));

    /// <summary>Runs <c>redis-cli -p <paramref name="port"/> <paramref name="args"/></c> and returns what it printed
    /// (raw, since its output is no terminal). An error reply comes back as text (<c>ERR …</c>): redis-cli exits 0 on it;
    /// an unreachable node throws.</summary>
    public async Task<string> CommandAsync(int port, params string[] args)
    {
        var (exitCode, output, error) = await RunAsync("redis-cli", ["-h", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), .. args]);
        return exitCode == 0
            ? output
            : throw new InvalidOperationException($"redis-cli -p {port} {string.Join(' ', args)} exited with {exitCode}: {output}{error}");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.KillAsync();
            try
            {
                Directory.Delete(node.Folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private async Task CreateAsync()
    {
        var (exitCode, output, error) = await RunAsync("redis-cli",
            ["--cluster", "create", .. ConnectionString.Split(','), "--cluster-replicas", "1", "--cluster-yes"]);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"redis-cli --cluster create exited with {exitCode}:\n{output}{error}");
        }
    }

    /// <summary>Null once formed, else what is not yet (for the timeout's message).</summary>
    private async Task<string?> FormedAsync()
    {
        var states = await Task.WhenAll(_nodes.Select(async node =>
        {
            var info = Fields(await CommandAsync(node.Port, "CLUSTER", "INFO"));
            var replication = Fields(await CommandAsync(node.Port, "INFO", "replication"));
            var role = replication.GetValueOrDefault("role");
            var problem =
                info.GetValueOrDefault("cluster_state") != "ok" ? $"cluster_state:{info.GetValueOrDefault("cluster_state")}"
                : info.GetValueOrDefault("cluster_slots_assigned") != $"{SlotCount}" ? $"cluster_slots_assigned:{info.GetValueOrDefault("cluster_slots_assigned")}"
                : info.GetValueOrDefault("cluster_known_nodes") != $"{_nodes.Length}" ? $"cluster_known_nodes:{info.GetValueOrDefault("cluster_known_nodes")}"
                : role == "slave" && replication.GetValueOrDefault("master_link_status") != "up"
                    ? $"master_link_status:{replication.GetValueOrDefault("master_link_status")}"
                : null;
            return (Role: role, Problem: problem is null ? null : $"{node.Port} {problem}");
        }));
        var masters = states.Count(s => s.Role == "master");
        return states.FirstOrDefault(s => s.Problem is not null).Problem
            ?? (masters == _nodes.Length / 2 ? null : $"{masters} masters of {_nodes.Length} nodes");
    }

    private async Task<string?> SettledAsync()
    {
        var problems = await Task.WhenAll(LiveNodes().Select(async node =>
        {
            var info = Fields(await CommandAsync(node.Port, "CLUSTER", "INFO"));
            if (info.GetValueOrDefault("cluster_state") != "ok" || info.GetValueOrDefault("cluster_slots_ok") != $"{SlotCount}")
            {
                return $"{node.Port} cluster_state:{info.GetValueOrDefault("cluster_state")} cluster_slots_ok:{info.GetValueOrDefault("cluster_slots_ok")}";
            }

            // Until the node timeout passes, a killed master still looks ok from everywhere: it must have lost its slots.
            var stale = ParseNodes(await CommandAsync(node.Port, "CLUSTER", "NODES")).FirstOrDefault(n => n.ServesSlots && (!IsLive(n.Port) || IsFailing(n)));
            return stale is null ? null : $"{node.Port} still sees {stale.Port} ({string.Join(',', stale.Flags)}) serving slots";
        }));
        return problems.FirstOrDefault(p => p is not null);
    }

    private static async Task UntilAsync(Func<Task<string?>> notYet, string what)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (await notYet() is { } problem)
        {
            try
            {
                await Task.Delay(PollInterval, deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"waited {Wait.Timeout} for {what}; last seen: {problem}");
            }
        }
    }

    private IEnumerable<Node> LiveNodes() => _nodes.Where(n => n.Alive);

    private Node AnyLive() => LiveNodes().FirstOrDefault() ?? throw new InvalidOperationException("no node of the cluster is running");

    private bool IsLive(int port) => _nodes.Any(n => n.Port == port && n.Alive);

    private static bool IsFailing(ClusterNode node) => node.Flags.Contains("fail") || node.Flags.Contains("fail?");

    /// <summary><paramref name="count"/> ports P, each with P + 10000 (its cluster bus) free too, all held while picking
    /// so none repeats or lands on another's bus port, and released before the nodes start.</summary>
    private static List<int> FreePortPairs(int count)
    {
        var held = new List<TcpListener>();
        var ports = new List<int>();
        try
        {
            for (var attempt = 0; ports.Count < count; attempt++)
            {
                if (attempt == 1000)
                {
                    throw new InvalidOperationException($"found only {ports.Count} of {count} free port pairs (P, P + {BusPortOffset}) on 127.0.0.1");
                }

                var listener = TryListen(0)!;
                held.Add(listener); // kept even when unusable, so the OS does not give it out again
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                if (port <= IPEndPoint.MaxPort - BusPortOffset && TryListen(port + BusPortOffset) is { } bus)
                {
                    held.Add(bus);
                    ports.Add(port);
                }
            }

            return ports;
        }
        finally
        {
            foreach (var listener in held)
            {
                listener.Stop();
            }
        }
    }

    private static TcpListener? TryListen(int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        try
        {
            listener.Start();
            return listener;
        }
        catch (SocketException) when (port != 0)
        {
            listener.Dispose();
            return null;
        }
    }

    /// <summary>Lines of <c>INFO</c> or <c>CLUSTER INFO</c> as key → value.</summary>
    private static Dictionary<string, string> Fields(string text)
    {
        var fields = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            var colon = line.IndexOf(':');
            if (colon > 0 && line[0] != '#')
            {
                fields[line[..colon]] = line[(colon + 1)..];
            }
        }

        return fields;
    }

    private sealed record ClusterNode(int Port, IReadOnlySet<string> Flags, bool ServesSlots);

    /// <summary><c>CLUSTER NODES</c>: <c>id ip:port@bus[,hostname] flags master ping pong epoch link slot…</c> per line.</summary>
    private static List<ClusterNode> ParseNodes(string text)
    {
        var nodes = new List<ClusterNode>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 8)
            {
                continue;
            }

            var address = fields[1].Split('@')[0];
            if (int.TryParse(address[(address.LastIndexOf(':') + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port))
            {
                nodes.Add(new ClusterNode(port, fields[2].Split(',').ToHashSet(StringComparer.Ordinal), fields.Length > 8));
            }
        }

        return nodes;
    }

    private static async Task<(int ExitCode, string Output, string Error)> RunAsync(string file, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        process.StandardInput.Close(); // nothing to answer: --cluster-yes already said yes
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        var output = process.StandardOutput.ReadToEndAsync(deadline.Token);
        var error = process.StandardError.ReadToEndAsync(deadline.Token);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
            return (process.ExitCode, await output, await error);
        }
        catch (OperationCanceledException)
        {
            process.Kill();
            throw new TimeoutException($"{file} {string.Join(' ', arguments)} did not finish within {Wait.Timeout}");
        }
    }

    /// <summary>One <c>redis-server</c> in cluster mode, in its own temporary folder.</summary>
    private sealed class Node(int port)
    {
        private readonly StringBuilder _log = new();
        private Process? _process;

        public int Port { get; } = port;

        public string Folder { get; } = Directory.CreateTempSubdirectory("gateway-redis-cluster-").FullName;

        public bool Alive => _process is { HasExited: false };

        /// <summary>Starts the node and returns once it says it is ready to accept connections.</summary>
        public async Task StartAsync(long nodeTimeoutMs)
        {
            var start = new ProcessStartInfo("redis-server")
            {
                WorkingDirectory = Folder,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            var portText = Port.ToString(CultureInfo.InvariantCulture);
            foreach (var argument in new[] { "--port", portText, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", Folder,
                         "--cluster-enabled", "yes", "--cluster-config-file", $"nodes-{portText}.conf",
                         "--cluster-node-timeout", nodeTimeoutMs.ToString(CultureInfo.InvariantCulture),
                         // A replica's first sync waits 5 s by default for more replicas to share the transfer: none come.
                         "--repl-diskless-sync-delay", "0",
                         // A master PINGs its replicas every 10 s by default, and a replica counts each in cmdstat_ping: rarer,
                         // so CommandCallsAsync("ping") counts what clients sent. repl-timeout must stay above the period;
                         // a killed master's link still drops at once (its socket closes) and failover runs on the cluster bus.
                         "--repl-ping-replica-period", "3600", "--repl-timeout", "7200" })
            {
                start.ArgumentList.Add(argument);
            }

            // redis-server logs "Ready to accept connections" once it listens: the signal waited on.
            var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            void OnLine(object? sender, DataReceivedEventArgs e)
            {
                if (e.Data is not { } line)
                {
                    return;
                }

                lock (_log)
                {
                    _log.AppendLine(line);
                }

                if (line.Contains("Ready to accept connections", StringComparison.Ordinal))
                {
                    ready.TrySetResult();
                }
            }

            var process = new Process { StartInfo = start, EnableRaisingEvents = true };
            process.OutputDataReceived += OnLine;
            process.ErrorDataReceived += OnLine;
            process.Exited += (_, _) =>
            {
                lock (_log)
                {
                    ready.TrySetException(new InvalidOperationException(
                        $"redis-server on {Port} exited before it was ready (is the redis-server package installed?):\n{_log}"));
                }
            };
            if (!process.Start())
            {
                throw new InvalidOperationException("redis-server did not start");
            }

            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            _process = process;

            await ready.Task.WaitAsync(Wait.Timeout);
        }

        /// <summary>SIGKILL, and waits until the process is gone.</summary>
        public async Task KillAsync()
        {
            if (_process is { } process)
            {
                process.Kill();
                await process.WaitForExitAsync();
                process.Dispose();
                _process = null;
            }
        }
    }
}
