using System.Diagnostics;
using System.Net;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;
using Gateway.Bench.Upstream;
using MockLlm;

namespace Gateway.Bench;

/// <summary>
/// One run: the mock in this process, each proxy in its own, the same workloads through each leg.
/// Phases run one leg at a time (the first-token phase interleaves them), quiet phases first.
/// </summary>
internal sealed partial class BenchRun : IAsyncDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(15);

    private readonly BenchOptions _options;
    private readonly MockLlmServer _mock;
    private readonly string _logDirectory;
    private readonly Dictionary<string, ProxyProcess> _proxies = [];
    private readonly BenchResult _result;
    private readonly Random _random = new(7);

    private BenchRun(BenchOptions options, MockLlmServer mock, string logDirectory, BenchResult result)
    {
        _options = options;
        _mock = mock;
        _logDirectory = logDirectory;
        _result = result;
    }

    private Ledger Ledger => _mock.Ledger;

    private IPEndPoint MockEndPoint => new(IPAddress.Loopback, _mock.BaseAddress.Port);

    public static async Task<int> RunAsync(BenchOptions options)
    {
        var clock = Stopwatch.StartNew();
        var limit = ProcessStats.OpenFilesLimit();
        // Each stream holds two descriptors in this process (client, mock) and two in the proxy
        // (client side, upstream side); keep a reserve for everything else.
        var maxStreams = (int)Math.Min(int.MaxValue, Math.Max(10, (limit - 1000) / 2));
        var legs = options.Legs.Where(l => l != LegNames.Nginx || ProxyProcess.NginxInstalled).ToList();
        var result = new BenchResult
        {
            StartedAt = DateTimeOffset.UtcNow,
            Smoke = options.Smoke,
            OpenFilesLimit = limit,
            MaxStreams = maxStreams,
            NginxWorkers = options.NginxWorkers,
            CancelTokensPerSecond = options.CancelTokensPerSecond,
        };
        if (options.Legs.Contains(LegNames.Nginx) && !ProxyProcess.NginxInstalled)
        {
            result.Notes.Add("nginx is not installed (apt-get install nginx-light): its leg was skipped.");
        }

        if (options.PhasesDefaulted && !LlamaServerProcess.Configured)
        {
            result.Notes.Add($"the real-server phase was skipped: LLAMA_SERVER_BIN and LLAMA_MODEL are not set ({LlamaServerProcess.HowToConfigure}).");
        }

        foreach (var (name, value) in options.ProxyEnvironment)
        {
            result.Notes.Add($"both .NET proxies ran with {name}={value}.");
        }

        var outPath = Path.GetFullPath(options.Out);
        var logDirectory = Path.Combine(Path.GetDirectoryName(outPath)!, "logs");
        var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 50, TimeToFirstTokenMs = 0 });
        await using var run = new BenchRun(options, mock, logDirectory, result);
        foreach (var leg in legs)
        {
            result.Legs.Add(new LegResult(leg));
        }

        Console.WriteLine($"bench: legs {string.Join(", ", legs)}; open-files limit {limit} → at most {maxStreams} concurrent streams; logs in {logDirectory}");
        foreach (var leg in legs.Where(l => l != LegNames.Direct))
        {
            run._proxies[leg] = await ProxyProcess.StartAsync(leg, mock.BaseAddress, logDirectory, options.NginxWorkers, options.ProxyEnvironment);
        }

        if (options.Phases.Contains("first-token"))
        {
            await run.PhaseAsync("first token", "all", run.FirstTokenAsync);
        }

        if (options.Phases.Contains("cancel"))
        {
            await run.CancellationRoundsAsync();
        }

        if (options.Phases.Contains("throughput"))
        {
            await run.ThroughputRoundsAsync(maxStreams);
        }

        foreach (var leg in options.Phases.Contains("allocations") ? result.Legs : [])
        {
            await run.PhaseAsync("allocations", leg.Leg, () => run.AllocationsAsync(leg));
        }

        foreach (var leg in options.Phases.Contains("resume") ? result.Legs : [])
        {
            await run.PhaseAsync("resume", leg.Leg, () => run.ResumeAsync(leg));
        }

        // One fresh proxy at a time from here: idle proxies hold pooled upstream connections, whose
        // other ends are descriptors in this process.
        foreach (var leg in legs)
        {
            await run.StopProxyAsync(leg);
        }

        foreach (var leg in options.Phases.Contains("memory") ? result.Legs : [])
        {
            await run.PhaseAsync("memory", leg.Leg, async () =>
            {
                await run.RestartProxyAsync(leg.Leg);
                await run.MemoryAsync(leg, maxStreams);
                await run.MassAbortAsync(leg, maxStreams);
            });
            await run.StopProxyAsync(leg.Leg);
        }

        if (options.Phases.Contains("failover"))
        {
            await run.PhaseAsync("failover", LegNames.Gateway, run.FailoverAsync);
        }

        if (options.Phases.Contains("rolling-deploy"))
        {
            await run.PhaseAsync("rolling deploy", LegNames.Gateway, run.RollingDeployAsync);
        }

        if (options.Phases.Contains("real-server"))
        {
            await run.PhaseAsync("real server", "all", run.RealServerAsync);
        }

        result.DurationSeconds = clock.Elapsed.TotalSeconds;
        Targets.Evaluate(result, options);
        var table = Table.Render(result);
        Console.WriteLine();
        Console.WriteLine(table);
        Directory.CreateDirectory(Path.GetDirectoryName(outPath)!);
        await File.WriteAllTextAsync(outPath, Json.Serialize(result));
        await File.WriteAllTextAsync(Path.ChangeExtension(outPath, ".txt"), table);
        Console.WriteLine($"bench: wrote {outPath} in {clock.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var proxy in _proxies.Values)
        {
            await proxy.DisposeAsync();
        }

        await _mock.DisposeAsync();
    }

    /// <summary>Runs a phase; a failure is written down and the run goes on with the next one.</summary>
    private async Task PhaseAsync(string phase, string leg, Func<Task> body)
    {
        try
        {
            await body();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _result.Notes.Add($"{phase} via {leg} failed: {ex.GetType().Name}: {ex.Message}");
            Console.WriteLine($"bench: {phase} via {leg} FAILED: {ex}");
        }
    }

    private IPEndPoint Target(string leg) => leg == LegNames.Direct ? MockEndPoint : _proxies[leg].EndPoint;

    private ProxyProcess? Proxy(string leg) => _proxies.GetValueOrDefault(leg);

    private async Task RestartProxyAsync(string leg)
    {
        await StopProxyAsync(leg);
        if (leg != LegNames.Direct)
        {
            _proxies[leg] = await ProxyProcess.StartAsync(leg, _mock.BaseAddress, _logDirectory, _options.NginxWorkers, _options.ProxyEnvironment);
        }
    }

    private async Task StopProxyAsync(string leg)
    {
        if (_proxies.Remove(leg, out var proxy))
        {
            await proxy.DisposeAsync();
        }
    }
}
