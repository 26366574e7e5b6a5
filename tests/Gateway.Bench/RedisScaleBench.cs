using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using Gateway.Redis;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Telemetry;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace Gateway.Bench;

/// <summary>
/// <c>--redis-scale</c>: what one claim costs in messages as replicas are added, on a real Redis Cluster (3 masters, 3
/// replicas on loopback). For each replica count, two designs run the same workload with a fresh prefix:
/// <list type="bullet">
/// <item><c>new</c>: real <see cref="RedisSessionRegistry"/> instances, each on its own <see cref="SharedRedis"/>; a claim
/// tells only the replica whose owner record it replaced (SPUBLISH on that replica's sharded channel);</item>
/// <item><c>baseline</c>: the design before 339a530, simulated here (<see cref="OldDesignReplica"/>): the claim script
/// PUBLISHes every claim on the one channel <c>{prefix}:sessions</c>, which every replica reads.</item>
/// </list>
/// Measured per run: messages delivered to replicas per claim, cross-checked against Redis's own command counts, and
/// the latency of a claim and of a cross-replica supersede (claim called → the old lease's token cancelled).
/// </summary>
internal static class RedisScaleBench
{
    public const string Usage = "  --redis-scale [--replicas 2,8,32,64] [--claims N] [--rounds R] [--out file.json]   messages per claim, new design vs one broadcast channel (default 2,000 claims, 5 interleaved rounds)";

    private const int Keys = 200;
    private const int InFlight = 16; // modest, so 64 replicas in one process fit on a 2-core machine
    private const int Seed = 20240917;
    private const double ReleaseAtOnce = 0.3; // of claims, released right after they answer: the next claim of the key supersedes nobody
    private const string Route = "bench";

    // 1 s rather than the 250 ms default: with 64 connections in one process on 2 cores, a scheduling stall must not
    // mark a replica away (it would then claim locally only and probe), since this bench counts messages, not outages.
    private static readonly TimeSpan RedisTimeout = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan SupersedeWait = TimeSpan.FromSeconds(5);

    public static async Task<int> RunAsync(string[] args)
    {
        int[] replicaCounts;
        try
        {
            replicaCounts = Counts(args, "--replicas", [2, 8, 32, 64]);
        }
        catch (FormatException ex)
        {
            Console.Error.WriteLine(ex.Message);
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var claims = Option(args, "--claims", 2000);
        var rounds = Option(args, "--rounds", 5);
        var outPath = Text(args, "--out") ?? Path.Combine("artifacts", "bench", "redis-scale.json");
        var started = Stopwatch.GetTimestamp();
        var startedAt = DateTimeOffset.UtcNow;

        await using var cluster = await RedisCluster.StartAsync();
        await using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        // One metrics object for every simulated process: the bench reads no gateway metric.
        var metrics = new GatewayMetrics(services.GetRequiredService<IMeterFactory>());
        Console.WriteLine($"redis-scale bench: Redis Cluster {cluster.ConnectionString}, {claims} claims per run over {Keys} keys, " +
            $"{InFlight} in flight, {ReleaseAtOnce:P0} released at once, seed {Seed}");

        // Rounds interleaved (every replica count and both designs in each round): a neighbour's burst on the shared
        // machine lands on both designs alike, and the spread over rounds shows how far one run's figure can be trusted.
        var rows = new List<RedisScaleRow>();
        for (var round = 1; round <= rounds; round++)
        {
            foreach (var n in replicaCounts)
            {
                foreach (var design in new[] { Design.New, Design.Baseline })
                {
                    var row = await RunOnceAsync(cluster, metrics, design, n, claims) with { Round = round };
                    rows.Add(row);
                    Console.WriteLine($"  round {round}: {n,3} replicas {Name(design),-8} done in {row.RunSeconds:F1} s");
                }
            }
        }

        var duration = Stopwatch.GetElapsedTime(started);
        var report = new RedisScaleReport(startedAt, Environment.ProcessorCount, RuntimeInformation.OSDescription, claims, Keys, InFlight,
            ReleaseAtOnce, Seed, Math.Round(duration.TotalSeconds, 1), rows);
        Console.WriteLine();
        Console.Write(Table(report));
        Console.Write(Summary(rows));
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        await File.WriteAllTextAsync(outPath, JsonSerializer.Serialize(report, JsonOptions));
        Console.WriteLine($"wrote {Path.GetFullPath(outPath)}; {duration.TotalSeconds:F1} s in all");
        return 0;
    }

    private enum Design
    {
        New,
        Baseline,
    }

    private static string Name(Design design) => design == Design.New ? "new" : "baseline";

    private static async Task<RedisScaleRow> RunOnceAsync(RedisCluster cluster, GatewayMetrics metrics, Design design, int n, int claims)
    {
        var started = Stopwatch.GetTimestamp();
        var prefix = $"scale-{n}-{Name(design)}-{Guid.NewGuid():N}"[..32];
        var replicas = new List<IBenchReplica>(n);
        try
        {
            for (var i = 0; i < n; i++)
            {
                replicas.Add(design == Design.New
                    ? new NewDesignReplica(cluster.ConnectionString, prefix, metrics)
                    : new OldDesignReplica(cluster.ConnectionString, prefix));
            }

            using (var ready = new CancellationTokenSource(Wait.Timeout))
            {
                await Task.WhenAll(replicas.Select(r => r.StartAsync(ready.Token)));
            }

            // Counted from here: the probes that made the replicas available are not part of the workload.
            await cluster.ResetStatsAsync();
            var before = replicas.Sum(r => r.Received);
            var beforeSelf = replicas.Sum(r => r.ReceivedFromSelf);
            var workload = new Workload(replicas, Plan(claims, n));
            await workload.RunAsync();

            // A message sent fire-and-forget may still be on its way (one to a lease already released, which nobody
            // waits for); Redis announces no delivery, so look until the replicas count what Redis counted, bounded.
            var channel = $"{prefix}:sessions";
            var subscribers = design == Design.New ? 1 : await SubscribersAsync(cluster, channel);
            var countedAs = design == Design.New ? "spublish" : "publish";
            long counted, delivered;
            using (var settle = new CancellationTokenSource(TimeSpan.FromSeconds(3)))
            {
                while (true)
                {
                    counted = await cluster.CommandCallsAsync(countedAs) * subscribers;
                    delivered = replicas.Sum(r => r.Received) - before;
                    if (counted == delivered || settle.IsCancellationRequested)
                    {
                        break;
                    }

                    await Task.Delay(TimeSpan.FromMilliseconds(20), CancellationToken.None);
                }
            }

            if (design == Design.Baseline && counted == 0 && delivered > 0)
            {
                // Redis 7 counts a script's inner calls under their own command; if one did not, the scripts are what ran.
                countedAs = "evalsha+eval (claim and release scripts)";
                counted = (await cluster.CommandCallsAsync("evalsha") + await cluster.CommandCallsAsync("eval")) * subscribers;
            }

            var outages = replicas.Count(r => r.WentAway);
            return new RedisScaleRow(
                Replicas: n,
                Design: Name(design),
                Claims: claims,
                CrossSupersedes: workload.CrossSupersedes,
                LocalSupersedes: workload.LocalSupersedes,
                SupersedesNotSeen: workload.SupersedesNotSeen,
                Delivered: delivered,
                DeliveredToSelf: replicas.Sum(r => r.ReceivedFromSelf) - beforeSelf,
                MessagesPerClaim: Math.Round((double)delivered / claims, 3),
                ExpectedPerClaim: Math.Round(design == Design.New ? (double)workload.CrossSupersedes / claims : n, 3),
                RedisCounted: counted,
                RedisCountedAs: design == Design.New ? countedAs : $"{countedAs} x {subscribers} subscribers",
                RedisOverDelivered: delivered == 0 ? (counted == 0 ? 1 : double.PositiveInfinity) : Math.Round((double)counted / delivered, 4),
                ClaimP50Ms: Percentile(workload.ClaimMs, 0.50),
                ClaimP99Ms: Percentile(workload.ClaimMs, 0.99),
                SupersedeP50Ms: Percentile(workload.SupersedeMs, 0.50),
                SupersedeP99Ms: Percentile(workload.SupersedeMs, 0.99),
                FailedClaims: replicas.Sum(r => r.FailedClaims),
                ReplicasThatWentAway: outages,
                RunSeconds: Math.Round(Stopwatch.GetElapsedTime(started).TotalSeconds, 2));
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }
        }
    }

    /// <summary>Subscribers of the broadcast channel: <c>PUBSUB NUMSUB</c> answers for its own node only in a cluster,
    /// so the sum over the nodes (a PUBLISH reaches every node over the cluster bus).</summary>
    private static async Task<long> SubscribersAsync(RedisCluster cluster, string channel)
    {
        long sum = 0;
        foreach (var port in cluster.Ports)
        {
            var lines = (await cluster.CommandAsync(port, "PUBSUB", "NUMSUB", channel)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (lines.Length >= 2 && long.TryParse(lines[1], CultureInfo.InvariantCulture, out var count))
            {
                sum += count;
            }
        }

        return sum;
    }

    /// <summary>The claims in order: which replica, which key, and whether the lease is released as soon as it answers.
    /// The same for both designs at one replica count (one seed).</summary>
    private static Step[] Plan(int claims, int replicas)
    {
        var random = new Random(Seed);
        var steps = new Step[claims];
        for (var i = 0; i < claims; i++)
        {
            steps[i] = new Step(random.Next(replicas), random.Next(Keys), random.NextDouble() < ReleaseAtOnce);
        }

        return steps;
    }

    private readonly record struct Step(int Replica, int Key, bool ReleaseAtOnce);

    /// <summary>
    /// Runs the plan <see cref="InFlight"/> claims at a time. Claims of one key wait for each other (a lock per key), so
    /// "another replica holds this key" is known exactly when a claim starts. Each key has at most one lease held: a
    /// claim supersedes it (across replicas, or locally on the same one), and the superseded lease is released once its
    /// token is cancelled, as a stream ends when it is superseded.
    /// </summary>
    private sealed class Workload(List<IBenchReplica> replicas, Step[] plan)
    {
        private readonly SemaphoreSlim[] _keyLocks = [.. Enumerable.Range(0, Keys).Select(_ => new SemaphoreSlim(1, 1))];
        private readonly Held?[] _holders = new Held?[Keys];
        private readonly SessionKey[] _keys = [.. Enumerable.Range(0, Keys).Select(k => SessionKey.Create(Route, null, $"k{k}"))];
        private int _next = -1;
        private int _cross;
        private int _local;
        private int _notSeen;

        public ConcurrentBag<double> ClaimMs { get; } = [];

        public ConcurrentBag<double> SupersedeMs { get; } = [];

        public int CrossSupersedes => _cross;

        public int LocalSupersedes => _local;

        /// <summary>Cross-replica supersedes whose old lease was not cancelled within <see cref="SupersedeWait"/>.</summary>
        public int SupersedesNotSeen => _notSeen;

        public async Task RunAsync()
        {
            await Task.WhenAll(Enumerable.Range(0, InFlight).Select(_ => Task.Run(WorkAsync)));
            foreach (var holder in _holders)
            {
                holder?.Release();
            }
        }

        private async Task WorkAsync()
        {
            int i;
            while ((i = Interlocked.Increment(ref _next)) < plan.Length)
            {
                var step = plan[i];
                var gate = _keyLocks[step.Key];
                await gate.WaitAsync();
                try
                {
                    await ClaimAsync(step);
                }
                finally
                {
                    gate.Release();
                }
            }
        }

        private async Task ClaimAsync(Step step)
        {
            var previous = _holders[step.Key];
            var startedAt = Stopwatch.GetTimestamp();
            var claimed = await replicas[step.Replica].ClaimAsync(_keys[step.Key]);
            ClaimMs.Add(Stopwatch.GetElapsedTime(startedAt).TotalMilliseconds);
            var held = new Held(step.Replica, claimed);
            if (previous is not null)
            {
                if (previous.Replica != step.Replica)
                {
                    Interlocked.Increment(ref _cross);
                    try
                    {
                        await previous.Cancelled.WaitAsync(SupersedeWait);
                        SupersedeMs.Add(Stopwatch.GetElapsedTime(startedAt, previous.CancelledAt).TotalMilliseconds);
                    }
                    catch (TimeoutException)
                    {
                        Interlocked.Increment(ref _notSeen);
                        previous.Release();
                    }
                }
                else
                {
                    Interlocked.Increment(ref _local);
                }
            }

            if (step.ReleaseAtOnce)
            {
                held.Release();
                _holders[step.Key] = null;
            }
            else
            {
                _holders[step.Key] = held;
            }
        }
    }

    /// <summary>A lease the workload holds: when its token is cancelled it notes the moment, and releases the lease off
    /// the thread that cancelled it (a replica's ordered message reader, or a claim's local supersede).</summary>
    private sealed class Held
    {
        private readonly TaskCompletionSource _cancelled = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Claimed _claimed;
        private long _cancelledAt;
        private int _released;

        public Held(int replica, Claimed claimed)
        {
            Replica = replica;
            _claimed = claimed;
            claimed.Token.Register(OnCancelled);
        }

        /// <summary>The replica's place in the run's list.</summary>
        public int Replica { get; }

        public Task Cancelled => _cancelled.Task;

        public long CancelledAt => Volatile.Read(ref _cancelledAt);

        private void OnCancelled()
        {
            Volatile.Write(ref _cancelledAt, Stopwatch.GetTimestamp());
            _cancelled.TrySetResult();
            ThreadPool.QueueUserWorkItem(static held => held.Release(), this, preferLocal: false);
        }

        public void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _claimed.Release();
            }
        }
    }

    private static string Table(RedisScaleReport report)
    {
        var text = new System.Text.StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"redis-scale {report.Date:u}, {report.ProcessorCount} cores, {report.Os}; {report.Claims} claims per run, {report.Keys} keys, {report.InFlight} in flight");
        text.AppendLine("round  replicas  design    claims  cross-sup  delivered  (to self)  per claim  expected  redis-counted  ratio   claim p50/p99 ms  supersede p50/p99 ms");
        foreach (var r in report.Runs)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{r.Round,5}  {r.Replicas,8}  {r.Design,-8}  {r.Claims,6}  {r.CrossSupersedes,9}  {r.Delivered,9}  {r.DeliveredToSelf,9}  {r.MessagesPerClaim,9:F3}  {r.ExpectedPerClaim,8:F3}  {r.RedisCounted,13}  {r.RedisOverDelivered,5:F3}  {r.ClaimP50Ms,7:F2} / {r.ClaimP99Ms,6:F2}  {r.SupersedeP50Ms,9:F2} / {r.SupersedeP99Ms,6:F2}");
        }

        text.AppendLine("redis-counted: new = cmdstat_spublish calls (one subscriber each); baseline = cmdstat_publish calls (the claim script's) x PUBSUB NUMSUB summed over the nodes.");
        text.AppendLine("delivered: new = sum of SharedRedis.MessagesReceived; baseline = every message a replica read on the channel, its own claims' included (to self).");
        foreach (var r in report.Runs.Where(r => r.Design == "new" && r.SupersedesNotSeen == 0 && r.Delivered != r.CrossSupersedes))
        {
            // Each supersede was seen, so the rest reached a replica whose lease was released but whose release script
            // had not yet deleted its owner record when the next claim of the key read it: a message that cancels nothing.
            text.AppendLine(CultureInfo.InvariantCulture,
                $"note: {r.Replicas} replicas new: {r.Delivered - r.CrossSupersedes} of {r.Delivered} messages reached a replica whose lease was already released (its owner record not yet deleted)");
        }

        foreach (var r in report.Runs.Where(r => r.SupersedesNotSeen > 0 || r.FailedClaims > 0 || r.ReplicasThatWentAway > 0))
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"note: {r.Replicas} replicas {r.Design}: {r.SupersedesNotSeen} supersedes not seen in {SupersedeWait.TotalSeconds:F0} s, {r.FailedClaims} claims failed, {r.ReplicasThatWentAway} replicas went away");
        }

        return text.ToString();
    }

    /// <summary>Per replica count and design over the rounds: the median and the range (min–max) of messages per claim,
    /// claim p50 / p99 and supersede p50 / p99, and the baseline's supersede p99 over the new design's, round by round.</summary>
    private static string Summary(List<RedisScaleRow> rows)
    {
        static string Spread(IEnumerable<double> values, string format)
        {
            var sorted = values.Order().ToArray();
            var median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
            return string.Create(CultureInfo.InvariantCulture, $"{median.ToString(format, CultureInfo.InvariantCulture)} [{sorted[0].ToString(format, CultureInfo.InvariantCulture)}–{sorted[^1].ToString(format, CultureInfo.InvariantCulture)}]");
        }

        var text = new System.Text.StringBuilder();
        var rounds = rows.Max(r => r.Round);
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"over {rounds} rounds: median [min–max]");
        text.AppendLine("replicas  design    per claim              redis = delivered  claim p50 ms           claim p99 ms           supersede p50 ms       supersede p99 ms       baseline/new supersede p99");
        foreach (var group in rows.GroupBy(r => (r.Replicas, r.Design)))
        {
            var (n, design) = group.Key;
            var ratio = design == "new"
                ? Spread(group.Select(r => rows.Single(b => b.Round == r.Round && b.Replicas == n && b.Design == "baseline").SupersedeP99Ms / r.SupersedeP99Ms), "F1")
                : "";
            text.AppendLine(CultureInfo.InvariantCulture,
                $"{n,8}  {design,-8}  {Spread(group.Select(r => r.MessagesPerClaim), "F3"),-21}  {(group.All(r => r.RedisCounted == r.Delivered) ? "every round" : "NOT EQUAL"),-17}  {Spread(group.Select(r => r.ClaimP50Ms), "F2"),-21}  {Spread(group.Select(r => r.ClaimP99Ms), "F2"),-21}  {Spread(group.Select(r => r.SupersedeP50Ms), "F2"),-21}  {Spread(group.Select(r => r.SupersedeP99Ms), "F2"),-21}  {ratio}");
        }

        return text.ToString();
    }

    private static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private static double Percentile(ConcurrentBag<double> values, double p)
    {
        if (values.IsEmpty)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToList();
        return Math.Round(sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)], 3);
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;
    }

    private static string? Text(string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    private static int[] Counts(string[] args, string name, int[] fallback)
    {
        if (Text(args, name) is not { } list)
        {
            return fallback;
        }

        var counts = list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(c => int.TryParse(c, CultureInfo.InvariantCulture, out var n) && n >= 2 ? n : throw new FormatException($"{name}: '{c}' is not a replica count of 2 or more"))
            .ToArray();
        return counts.Length > 0 ? counts : fallback;
    }

    /// <summary>A lease as the workload sees it: the token a supersede cancels, and how to release it.</summary>
    private sealed record Claimed(CancellationToken Token, Action Release);

    /// <summary>One replica of either design, on its own connection.</summary>
    private interface IBenchReplica : IAsyncDisposable
    {
        /// <summary>Completes once the replica hears its channel.</summary>
        Task StartAsync(CancellationToken cancellationToken);

        ValueTask<Claimed> ClaimAsync(SessionKey key);

        /// <summary>Messages about sessions this replica received.</summary>
        long Received { get; }

        /// <summary>Of <see cref="Received"/>, the ones it sent itself (the broadcast design's echo).</summary>
        long ReceivedFromSelf { get; }

        int FailedClaims { get; }

        /// <summary>True if Redis was marked unavailable on this replica at some point of the run.</summary>
        bool WentAway { get; }
    }

    /// <summary>The gateway's own classes, as one replica composes them.</summary>
    private sealed class NewDesignReplica : IBenchReplica
    {
        private readonly SharedRedis _redis;
        private readonly RedisSessionRegistry _registry;
        private readonly CancellationTokenSource _stopping = new();
        private Task _away = Task.CompletedTask;

        public NewDesignReplica(string connectionString, string prefix, GatewayMetrics metrics)
        {
            var options = Options.Create(new RedisOptions { Redis = connectionString, RedisPrefix = prefix, RedisTimeout = RedisTimeout });
            _redis = new SharedRedis(options, metrics, TimeProvider.System, NullLogger<SharedRedis>.Instance);
            _registry = new RedisSessionRegistry(new SessionRegistry(TimeProvider.System), _redis, options, new NoRoutes(), TimeProvider.System,
                NullLogger<RedisSessionRegistry>.Instance);
        }

        public long Received => _redis.MessagesReceived;

        public long ReceivedFromSelf => 0; // SharedRedis counts only what others sent (its probes are not counted)

        public int FailedClaims => 0; // the registry never fails a claim: it falls back to local-only, seen in WentAway

        public bool WentAway => _away.IsCompletedSuccessfully;

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            _redis.Start();
            await _redis.WaitForAvailabilityAsync(true, cancellationToken);
            _away = _redis.WaitForAvailabilityAsync(false, _stopping.Token);
        }

        public async ValueTask<Claimed> ClaimAsync(SessionKey key)
        {
            var lease = await _registry.ClaimAsync(key);
            return new Claimed(lease.Token, () => _registry.Release(lease));
        }

        public async ValueTask DisposeAsync()
        {
            await _stopping.CancelAsync();
            try
            {
                await _away;
            }
            catch (OperationCanceledException)
            {
            }

            await _redis.DisposeAsync();
            _stopping.Dispose();
        }
    }

    /// <summary>No routes: the bench never stops a session, the one use the registry makes of them.</summary>
    private sealed class NoRoutes : IProxyStateLookup
    {
        public bool TryGetRoute(string id, [NotNullWhen(true)] out RouteModel? route)
        {
            route = null;
            return false;
        }

        public IEnumerable<RouteModel> GetRoutes() => [];

        public bool TryGetCluster(string id, [NotNullWhen(true)] out ClusterState? cluster)
        {
            cluster = null;
            return false;
        }

        public IEnumerable<ClusterState> GetClusters() => [];
    }

    /// <summary>
    /// The design before 339a530, reduced to what a claim does: the claim script (<see cref="OldClaim"/>, copied from
    /// 3ca0149) sets the epoch and owner record and PUBLISHes <c>c hash epoch replica lease</c> on <c>{prefix}:sessions</c>,
    /// which every replica subscribes to and reads in order; a replica cancels its lease for the key when another replica
    /// announced a higher epoch. Its own announcement comes back to it too (counted in <see cref="ReceivedFromSelf"/>).
    /// Left out: stops, probes on the channel, refresh and reconcile rounds (none of them run in this workload).
    /// </summary>
    private sealed class OldDesignReplica(string connectionString, string prefix) : IBenchReplica
    {
        private readonly string _prefix = prefix;
        private readonly string _id = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(8));
        private readonly RedisChannel _channel = RedisChannel.Literal($"{prefix}:sessions");
        private readonly string _ownerTtlMs = "30000";
        private readonly string _epochTtlMs = "600000";
        private readonly ConcurrentDictionary<string, SimLease> _leases = new(StringComparer.Ordinal);
        private readonly Lock _gate = new();
        private ConnectionMultiplexer? _redis;
        private long _received;
        private long _own;
        private long _nextLease;
        private int _failed;

        public long Received => Interlocked.Read(ref _received);

        public long ReceivedFromSelf => Interlocked.Read(ref _own);

        public int FailedClaims => Volatile.Read(ref _failed);

        public bool WentAway => false; // no availability state: a failed claim is counted in FailedClaims

        public async Task StartAsync(CancellationToken cancellationToken)
        {
            var configuration = ConfigurationOptions.Parse(connectionString);
            configuration.AsyncTimeout = (int)RedisTimeout.TotalMilliseconds;
            configuration.ClientName = "llm-gateway-old";
            _redis = await ConnectionMultiplexer.ConnectAsync(configuration).WaitAsync(cancellationToken);
            var queue = await _redis.GetSubscriber().SubscribeAsync(_channel).WaitAsync(cancellationToken);
            queue.OnMessage(OnMessage); // one ordered reader, as before
        }

        public async ValueTask<Claimed> ClaimAsync(SessionKey key)
        {
            var hash = RedisSessionRegistry.Hash(key.Value);
            var lease = new SimLease(hash, Interlocked.Increment(ref _nextLease));
            SimLease? previous;
            lock (_gate)
            {
                _leases.TryGetValue(hash, out previous);
                _leases[hash] = lease;
            }

            previous?.Cancel(); // a local supersede
            var floor = previous is null ? 0 : Math.Max(previous.Epoch, previous.Seen) + 1;
            try
            {
                var epoch = await _redis!.GetDatabase().ScriptEvaluateAsync(OldClaim,
                    [$"{_prefix}:{{{hash}}}:epoch", $"{_prefix}:{{{hash}}}:owner"],
                    [_id, _ownerTtlMs, _epochTtlMs, _channel.ToString(), hash, lease.Id, floor, 0]).WaitAsync(RedisTimeout);
                lease.SetEpoch(long.Parse((string)epoch!, CultureInfo.InvariantCulture));
                if (lease.Seen > lease.Epoch)
                {
                    lease.Cancel(); // a higher epoch was announced while the claim was on its way
                }
            }
            catch (Exception ex) when (SharedRedis.IsFailure(ex))
            {
                Interlocked.Increment(ref _failed);
            }

            return new Claimed(lease.Token, () => Release(lease));
        }

        private void Release(SimLease lease)
        {
            bool current;
            lock (_gate)
            {
                current = _leases.TryRemove(KeyValuePair.Create(lease.Hash, lease));
            }

            if (current && lease.Epoch > 0)
            {
                _redis!.GetDatabase().ScriptEvaluate(RedisScripts.Release, [$"{_prefix}:{{{lease.Hash}}}:owner"],
                    [$"{_id}:{lease.Epoch.ToString(CultureInfo.InvariantCulture)}"], CommandFlags.FireAndForget);
            }
        }

        private void OnMessage(ChannelMessage message)
        {
            Interlocked.Increment(ref _received);
            var parts = ((string?)message.Message)?.Split(' ');
            if (parts is not ["c", var hash, var epochText, var replica, var leaseText]
                || !long.TryParse(epochText, CultureInfo.InvariantCulture, out var epoch))
            {
                return;
            }

            if (replica == _id)
            {
                Interlocked.Increment(ref _own);
                // Our own announcement, maybe ahead of the script's reply: from here on we know our epoch.
                if (_leases.TryGetValue(hash, out var ours) && long.TryParse(leaseText, CultureInfo.InvariantCulture, out var id) && ours.Id == id)
                {
                    ours.SetEpoch(epoch);
                }

                return;
            }

            if (!_leases.TryGetValue(hash, out var tracked))
            {
                return;
            }

            // Epoch unknown (-1): our claim is on its way and compares when it answers.
            tracked.Saw(epoch);
            if (tracked.Epoch > 0 && epoch > tracked.Epoch)
            {
                tracked.Cancel();
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_redis is { } redis)
            {
                await redis.DisposeAsync();
            }
        }

        /// <summary>The claim script of 3ca0149 (<c>RedisScripts.Claim</c> there): its ClaimBody, with the PUBLISH, and
        /// <c>return epoch</c>. KEYS: epoch, owner. ARGV: replica, owner TTL ms, epoch TTL ms, channel, key hash, lease id,
        /// floor, made at.</summary>
        private const string OldClaim = """
            local madeAt = tonumber(ARGV[8])
            if madeAt > 0 then
              local owner = redis.call('GET', KEYS[2])
              local held = owner and tonumber(string.match(owner, ':(%d+)$'))
              local ours = owner and string.sub(owner, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':'
              if held and held >= madeAt and not ours then
                return string.format('-%.0f', held)
              end
            end
            local floor = tonumber(ARGV[7])
            if madeAt > 0 then
              floor = math.max(floor, madeAt)
            else
              local t = redis.call('TIME')
              floor = math.max(floor, tonumber(t[1]) * 1000000 + tonumber(t[2]))
            end
            local e = redis.call('INCR', KEYS[1])
            if e < floor then
              e = floor
              redis.call('SET', KEYS[1], string.format('%.0f', e))
            end
            local epoch = string.format('%.0f', e)
            redis.call('PEXPIRE', KEYS[1], ARGV[3])
            redis.call('SET', KEYS[2], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
            redis.call('PUBLISH', ARGV[4], 'c ' .. ARGV[5] .. ' ' .. epoch .. ' ' .. ARGV[1] .. ' ' .. ARGV[6])
            return epoch
            """;
    }

    /// <summary>A baseline lease: epoch -1 while its claim is on its way; the highest epoch another replica announced.</summary>
    private sealed class SimLease(string hash, long id)
    {
        private readonly CancellationTokenSource _cts = new();
        private long _epoch = -1;
        private long _seen;

        public string Hash { get; } = hash;

        public long Id { get; } = id;

        public CancellationToken Token => _cts.Token;

        public long Epoch => Interlocked.Read(ref _epoch);

        public long Seen => Interlocked.Read(ref _seen);

        public void SetEpoch(long epoch) => RaiseTo(ref _epoch, epoch);

        public void Saw(long epoch) => RaiseTo(ref _seen, epoch);

        public void Cancel()
        {
            try
            {
                _cts.Cancel();
            }
            catch (ObjectDisposedException)
            {
            }
        }

        private static void RaiseTo(ref long field, long value)
        {
            var current = Interlocked.Read(ref field);
            while (value > current)
            {
                var was = Interlocked.CompareExchange(ref field, value, current);
                if (was == current)
                {
                    return;
                }

                current = was;
            }
        }
    }
}

internal sealed record RedisScaleRow(
    int Replicas,
    string Design,
    int Claims,
    int CrossSupersedes,
    int LocalSupersedes,
    int SupersedesNotSeen,
    long Delivered,
    long DeliveredToSelf,
    double MessagesPerClaim,
    double ExpectedPerClaim,
    long RedisCounted,
    string RedisCountedAs,
    double RedisOverDelivered,
    double ClaimP50Ms,
    double ClaimP99Ms,
    double SupersedeP50Ms,
    double SupersedeP99Ms,
    int FailedClaims,
    int ReplicasThatWentAway,
    double RunSeconds,
    int Round = 1);

internal sealed record RedisScaleReport(
    DateTimeOffset Date,
    int ProcessorCount,
    string Os,
    int Claims,
    int Keys,
    int InFlight,
    double ReleasedAtOnce,
    int Seed,
    double DurationSeconds,
    List<RedisScaleRow> Runs);
