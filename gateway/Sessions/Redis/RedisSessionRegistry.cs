using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Yarp.ReverseProxy;
using Gateway.Utilities;

namespace Gateway.Sessions.Redis;

/// <summary>
/// Supersede across replicas. The local <see cref="SessionRegistry"/> stays the source of truth for
/// this replica's leases and decides local supersede at once; Redis adds the order between replicas:
/// <list type="bullet">
/// <item>a claim runs <see cref="RedisScripts.Claim"/>, and the request goes upstream once it answered:
/// the key's next epoch (INCR), an owner record <c>replica:epoch</c> with a TTL, and an announcement
/// <c>c hash epoch replica lease</c> on the deployment's channel;</item>
/// <item>every replica reads the channel in order and cancels its own lease for that key when a higher
/// epoch is announced by another replica, so of two simultaneous claims the higher epoch survives;</item>
/// <item>an explicit stop is announced as <c>s replica stop-id hash,hash,...</c> (the key hash on each
/// session route), and a replica that stopped streams answers on the stopper's own channel
/// <c>acks:replica</c> with <c>stop-id replica count</c>: a stop counts only streams that stopped.</item>
/// </list>
/// Keys and messages carry SHA-256 hashes of <see cref="SessionKey.Value"/>, never a session id or a
/// credential. When Redis does not answer, claims are local only and nothing waits (a claim in flight
/// waits at most the Redis timeout); a probe brings cross-replica mode back, and the leases claimed
/// locally meanwhile are then claimed in Redis, where the newest claim of each key wins.
/// </summary>
internal sealed class RedisSessionRegistry : ISessionRegistry, IAsyncDisposable
{
    private const int StripeCount = 64;
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    private readonly SessionRegistry _local;
    private readonly RedisRegistryOptions _options;
    private readonly IProxyStateLookup _routes;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisSessionRegistry> _logger;
    private readonly ConcurrentDictionary<string, Tracked> _tracked = new(StringComparer.Ordinal);
    private readonly Lock[] _stripes = [.. Enumerable.Range(0, StripeCount).Select(_ => new Lock())];
    private readonly RedisChannel _channel;
    private readonly RedisChannel _ackChannel;
    private readonly ConcurrentDictionary<long, StopAcks> _stops = new();
    private long _lastStopId;
    private readonly TimeSpan _connectTimeout;
    private readonly string _ownerTtlMs;
    private readonly string _epochTtlMs;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private ConnectionMultiplexer? _redis;
    private ChannelMessageQueue? _queue;
    private ChannelMessageQueue? _ackQueue;
    private Task _loop = Task.CompletedTask;
    private TaskCompletionSource<long>? _probe;
    private long _probeNonce;
    private int _state = -1; // -1 not known yet, 0 unavailable, 1 available
    private TaskCompletionSource _availabilityChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastRefresh;
    private int _disposed;
    private long _startedAt;

    public RedisSessionRegistry(SessionRegistry local, IOptions<RedisRegistryOptions> options, IProxyStateLookup routes,
        GatewayMetrics metrics, TimeProvider time, ILogger<RedisSessionRegistry> logger)
    {
        _local = local;
        _options = options.Value;
        _routes = routes;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _channel = RedisChannel.Literal($"{_options.RedisPrefix}:sessions");
        _ackChannel = AckChannel(ReplicaId);
        _ownerTtlMs = ((long)_options.RedisOwnerTtl.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        // The counter only has to outlive the gap between two claims of a conversation; a counter
        // created afresh starts above every older epoch anyway (see RedisScripts.Claim).
        _epochTtlMs = ((long)Math.Max(_options.RedisOwnerTtl.TotalMilliseconds * 4, 600_000)).ToString(CultureInfo.InvariantCulture);
        _connectTimeout = TimeSpan.FromMilliseconds(Math.Max(_options.RedisTimeout.TotalMilliseconds * 4, 1000));
        metrics.RedisAvailability(false);
    }

    /// <summary>This process's id in owner records and announcements (random per start).</summary>
    public string ReplicaId { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>True while Redis answers and this replica hears its own channel: cross-replica mode.</summary>
    public bool Available => Volatile.Read(ref _state) == 1;

    /// <summary>The Redis database while <see cref="Available"/>, for other features that share state across
    /// replicas (session affinity, token budgets); null while this replica is local-only.</summary>
    public IDatabase? Database => Available ? _redis?.GetDatabase() : null;

    /// <summary>The prefix every key and channel of this deployment starts with (<c>Gateway:Sessions:RedisPrefix</c>).</summary>
    public string KeyPrefix => _options.RedisPrefix;

    /// <summary>Completes once <see cref="Available"/> equals <paramref name="available"/> (at once if it does).</summary>
    public async Task WaitForAvailabilityAsync(bool available, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Taken before the look, so a change between the look and the wait is not missed.
            var changed = Volatile.Read(ref _availabilityChanged);
            if (Available == available)
            {
                return;
            }

            await changed.Task.WaitAsync(cancellationToken);
        }
    }

    private void AvailabilityChanged() =>
        Interlocked.Exchange(ref _availabilityChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Starts connecting in the background: a Redis that is down or slow never delays start-up.</summary>
    public void Start()
    {
        _startedAt = _time.GetTimestamp();
        _loop = Task.Run(() => RunAsync(_stopping.Token));
    }

    /// <summary>
    /// Supersedes locally at once, then waits for the Redis claim (bounded by the Redis timeout, never
    /// faulting): a stream whose upstream request has begun holds an epoch, so any claim made after it
    /// began, here or on another replica, gets a higher one and supersedes it. Without the wait, a claim
    /// delayed on its way to Redis could be ordered after a newer request's, and the newer one would lose.
    /// </summary>
    public async ValueTask<Lease> ClaimAsync(SessionKey key, long? arrivedAt = null)
    {
        var hash = Hash(key.Value);
        Tracked tracked;
        Lease? replaced;
        // One stripe per key hash keeps the local order of claims and the order of their Redis claims the
        // same, so the lease that survives here is the one whose epoch is announced last.
        lock (_stripes[StringComparer.Ordinal.GetHashCode(hash) & (StripeCount - 1)])
        {
            var lease = _local.Claim(key, arrivedAt, out replaced);
            if (lease.Token.IsCancellationRequested)
            {
                return lease; // an older request than this replica's current owner: nothing to announce
            }

            _tracked.TryGetValue(hash, out var previous);
            tracked = new Tracked(lease, hash, MicrosecondsNow());
            _tracked[hash] = tracked;
            tracked.Claimed = OrderAsync(tracked, previous);
        }

        await tracked.Claimed;
        if (replaced is not null)
        {
            await _local.WhenEndedAsync(replaced);
        }

        return tracked.Lease;
    }

    /// <summary>
    /// <see cref="ClaimAsync"/> only while the key is idle: this replica's registry decides for its own streams,
    /// then <see cref="RedisScripts.ClaimIfIdle"/> for the others' (an owner record of another replica, not in its
    /// debounce window, is a stream active there). Null when busy. Redis away: this replica's view only.
    /// </summary>
    public async ValueTask<Lease?> ClaimIfIdleAsync(SessionKey key, long? arrivedAt = null, bool held = false)
    {
        var hash = Hash(key.Value);
        Tracked tracked;
        Lease? replaced;
        lock (_stripes[StringComparer.Ordinal.GetHashCode(hash) & (StripeCount - 1)])
        {
            var lease = _local.ClaimIfIdle(key, arrivedAt, held, out replaced);
            if (lease is null || lease.Token.IsCancellationRequested)
            {
                return lease;
            }

            _tracked.TryGetValue(hash, out var previous);
            tracked = new Tracked(lease, hash, MicrosecondsNow()) { IfIdle = true, Held = held };
            _tracked[hash] = tracked;
            tracked.Claimed = OrderAsync(tracked, previous);
        }

        await tracked.Claimed;
        if (tracked.Busy)
        {
            Release(tracked.Lease);
            return null;
        }

        if (replaced is not null)
        {
            await _local.WhenEndedAsync(replaced);
        }

        return tracked.Lease;
    }

    /// <summary>Ends the window here, then in Redis (<see cref="RedisScripts.LeaveWindow"/>), where a claim on another
    /// replica may have taken the key first: then the lease is superseded. Redis away: this replica's view only.</summary>
    public async ValueTask<bool> LeaveWindowAsync(Lease lease)
    {
        if (!lease.TryLeaveWindow())
        {
            return false;
        }

        var hash = Hash(lease.Key.Value);
        if (!_tracked.TryGetValue(hash, out var tracked) || tracked.Lease != lease)
        {
            return lease.Reason == StreamOutcome.None;
        }

        await tracked.Claimed;
        if (!tracked.Held || tracked.Epoch <= 0 || !Available || _redis is not { } redis)
        {
            return lease.Reason == StreamOutcome.None;
        }

        try
        {
            var kept = (long)await redis.GetDatabase().ScriptEvaluateAsync(RedisScripts.LeaveWindow,
                [OwnerKey(hash), HeldKey(hash)], [tracked.OwnerValue(ReplicaId)]).WaitAsync(_options.RedisTimeout, _time);
            if (kept == 1)
            {
                return lease.Reason == StreamOutcome.None;
            }

            if (lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
            {
                RedisRegistryLog.SupersededRemotely(_logger, lease.Key.Fingerprint());
            }

            return false;
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            MarkUnavailable(ex);
            return lease.Reason == StreamOutcome.None;
        }
    }

    public void Release(Lease lease)
    {
        _local.Release(lease);
        var hash = Hash(lease.Key.Value);
        if (_tracked.TryGetValue(hash, out var tracked) && tracked.Lease == lease)
        {
            _tracked.TryRemove(KeyValuePair.Create(hash, tracked));
            _ = ReleaseAsync(tracked);
        }
    }

    public Lease? Find(SessionKey key) => _local.Find(key);

    /// <summary>
    /// Cancels this replica's streams of the tenant session, announces the stop to the others with the
    /// session's key hash on each session route (one dictionary look-up per route for them), and counts
    /// the streams that acknowledged: those ended here, plus what each replica named in an owner record
    /// says it stopped, waited for at most the Redis timeout (a record left by a crashed replica, or by a
    /// release skipped while Redis was away, answers nothing and counts nothing). Redis being slow for a
    /// stop never marks it unavailable: a storm of stops must not split the replicas.
    /// </summary>
    public async ValueTask<int> StopAsync(string tenantSession, CancellationToken cancellationToken)
    {
        var hashes = new List<string>();
        foreach (var route in _routes.GetRoutes())
        {
            if (RouteSessionPolicy.For(route.Config).Enabled)
            {
                hashes.Add(Hash(SessionKey.ValueOf(route.Config.RouteId, tenantSession)));
            }
        }

        var cancelled = CancelHere(hashes, StreamOutcome.Stopped);
        if (!Available || _redis is not { } redis || hashes.Count == 0)
        {
            return cancelled;
        }

        var startedAt = _time.GetTimestamp();
        var stopId = Interlocked.Increment(ref _lastStopId);
        var acks = new StopAcks();
        _stops[stopId] = acks;
        try
        {
            var db = redis.GetDatabase();
            var owners = new Task<RedisValue>[hashes.Count];
            for (var i = 0; i < hashes.Count; i++)
            {
                owners[i] = db.StringGetAsync(OwnerKey(hashes[i]));
            }

            // Read before announcing, on the same connection: an owner that stops at once has not yet
            // removed its record when the reads run.
            var announce = db.PublishAsync(_channel,
                $"s {ReplicaId} {stopId.ToString(CultureInfo.InvariantCulture)} {string.Join(',', hashes)}");
            await Task.WhenAll(owners.Append<Task>(announce)).WaitAsync(_options.RedisTimeout, _time, cancellationToken);
            var expected = new HashSet<string>(StringComparer.Ordinal);
            foreach (var owner in owners)
            {
                var value = (string?)owner.Result;
                var colon = value?.LastIndexOf(':') ?? -1;
                if (colon > 0 && value.AsSpan(0, colon) is var replica && !replica.SequenceEqual(ReplicaId))
                {
                    expected.Add(replica.ToString());
                }
            }

            if (expected.Count > 0)
            {
                var left = _options.RedisTimeout - _time.GetElapsedTime(startedAt);
                await acks.ExpectAsync(expected).WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, cancellationToken);
            }
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            // Not answered in time: what acknowledged so far is what is known to have stopped.
        }
        finally
        {
            _stops.TryRemove(stopId, out _);
        }

        return cancelled + acks.Count;
    }

    /// <summary>Cancels this replica's streams under <paramref name="hashes"/>; returns how many it ended.</summary>
    private int CancelHere(IEnumerable<string> hashes, StreamOutcome reason)
    {
        var cancelled = 0;
        foreach (var hash in hashes)
        {
            if (_tracked.TryGetValue(hash, out var tracked) && tracked.Lease.TryCancel(reason, _time.GetTimestamp()))
            {
                cancelled++;
            }
        }

        return cancelled;
    }

    private async Task OrderAsync(Tracked tracked, Tracked? previous)
    {
        if (previous is not null)
        {
            await previous.Claimed; // never faults; keeps this replica's claims for one key in order
        }

        // Superseded here before its turn came: the newer local claim announces instead.
        if (tracked.Lease.Reason == StreamOutcome.Superseded || !Available || _redis is not { } redis)
        {
            tracked.SetLocalOnly();
            return;
        }

        try
        {
            // Above every epoch this replica has seen for the key, whatever Redis's counter says.
            var floor = previous is null ? 0 : Math.Max(previous.Epoch, previous.Seen) + 1;
            var db = redis.GetDatabase();
            var epoch = await (tracked.IfIdle ? ClaimIfIdleInRedisAsync(db, tracked, floor) : ClaimInRedisAsync(db, tracked, floor, madeAt: 0))
                .WaitAsync(_options.RedisTimeout, _time);
            if (epoch == 0)
            {
                tracked.Busy = true; // another replica's stream is active: nothing was changed in Redis
                return;
            }

            tracked.SetEpoch(epoch);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            tracked.SetLocalOnly();
            MarkUnavailable(ex);
        }
    }

    /// <summary>Runs <see cref="RedisScripts.Claim"/>: the epoch, or minus the owner's when a reconciling
    /// claim (<paramref name="madeAt"/> above 0) lost to a newer one.</summary>
    private async Task<long> ClaimInRedisAsync(IDatabase db, Tracked tracked, long floor, long madeAt)
    {
        var epoch = await db.ScriptEvaluateAsync(RedisScripts.Claim,
            [EpochKey(tracked.Hash), OwnerKey(tracked.Hash)],
            [ReplicaId, _ownerTtlMs, _epochTtlMs, _channel.ToString(), tracked.Hash, tracked.Lease.Id, floor, madeAt]);
        return long.Parse((string)epoch!, CultureInfo.InvariantCulture);
    }

    /// <summary>Runs <see cref="RedisScripts.ClaimIfIdle"/>: the epoch, or 0 when another replica's stream is active.</summary>
    private async Task<long> ClaimIfIdleInRedisAsync(IDatabase db, Tracked tracked, long floor)
    {
        var epoch = (string?)await db.ScriptEvaluateAsync(RedisScripts.ClaimIfIdle,
            [EpochKey(tracked.Hash), OwnerKey(tracked.Hash), HeldKey(tracked.Hash)],
            [ReplicaId, _ownerTtlMs, _epochTtlMs, _channel.ToString(), tracked.Hash, tracked.Lease.Id, floor, 0, tracked.Held ? 1 : 0]);
        return epoch == "busy" ? 0 : long.Parse(epoch!, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// Redis answers again: the leases this replica claimed without it (never announced, so another
    /// replica may still run an older stream for the same key) are claimed now, in the order they were
    /// made, each with the time it was made. A lease newer than the key's owner wins and is announced, so
    /// the older stream elsewhere is superseded with its notice; one older than the owner is superseded here.
    /// </summary>
    private async Task ReconcileAsync(ConnectionMultiplexer redis)
    {
        var localOnly = _tracked.Values.Where(t => t.Epoch == 0 && t.Lease.Reason == StreamOutcome.None).OrderBy(t => t.Lease.Id).ToList();
        if (localOnly.Count == 0)
        {
            return;
        }

        var db = redis.GetDatabase();
        var claims = localOnly.Select(t => ClaimInRedisAsync(db, t, floor: Math.Max(0, t.Seen), madeAt: t.MadeAt)).ToList();
        await Task.WhenAll(claims).WaitAsync(_options.RedisTimeout * 4, _time);
        for (var i = 0; i < localOnly.Count; i++)
        {
            var epoch = claims[i].Result;
            if (epoch > 0)
            {
                localOnly[i].SetEpoch(epoch);
            }
            else if (localOnly[i].Lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
            {
                RedisRegistryLog.SupersededRemotely(_logger, localOnly[i].Lease.Key.Fingerprint());
            }
        }

        RedisRegistryLog.Reconciled(_logger, localOnly.Count);
    }

    private async Task ReleaseAsync(Tracked tracked)
    {
        await tracked.Claimed;
        if (tracked.Epoch <= 0 || !Available || _redis is not { } redis)
        {
            return; // no record of ours, or Redis is away: the record's TTL removes it
        }

        try
        {
            await redis.GetDatabase().ScriptEvaluateAsync(RedisScripts.Release, [OwnerKey(tracked.Hash)], [tracked.OwnerValue(ReplicaId)])
                .WaitAsync(_options.RedisTimeout, _time);
        }
        catch (Exception ex) when (IsRedisFailure(ex))
        {
            MarkUnavailable(ex);
        }
    }

    /// <summary>The channel, read in order: claims, stops and this replica's probes. Each message costs a
    /// dictionary look-up or a few: it runs on the one ordered reader every claim waits behind.</summary>
    private void OnMessage(ChannelMessage message)
    {
        var text = (string?)message.Message;
        if (text is null || text.Length < 2)
        {
            return;
        }

        var parts = text.Split(' ');
        switch (parts)
        {
            case ["c", var hash, var epochText, var replica, var leaseText]
                when long.TryParse(epochText, CultureInfo.InvariantCulture, out var epoch):
                if (!_tracked.TryGetValue(hash, out var tracked))
                {
                    return;
                }

                if (replica == ReplicaId)
                {
                    // Our own announcement, maybe ahead of the script's reply: from here on we know our epoch.
                    if (long.TryParse(leaseText, CultureInfo.InvariantCulture, out var leaseId) && tracked.Lease.Id == leaseId)
                    {
                        tracked.SetEpoch(epoch);
                    }

                    return;
                }

                // Epoch unknown (-1): our claim has not run yet, or its announcement would have come first,
                // so ours will be the higher one. Local only (0): newer if claimed after ours was made (an
                // epoch is at least the Redis clock's microseconds when it was claimed).
                tracked.Saw(epoch);
                var mine = tracked.Epoch;
                var newer = mine > 0 ? epoch > mine : mine == 0 && epoch > tracked.MadeAt;
                if (newer && tracked.Lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
                {
                    RedisRegistryLog.SupersededRemotely(_logger, tracked.Lease.Key.Fingerprint());
                }

                return;

            case ["s", var replica, var stopId, var hashes] when replica != ReplicaId:
                var stopped = CancelHere(hashes.Split(','), StreamOutcome.Stopped);
                if (stopped > 0 && _redis is { } redis)
                {
                    // Fire and forget: nothing on this ordered reader waits for Redis.
                    redis.GetDatabase().Publish(AckChannel(replica),
                        $"{stopId} {ReplicaId} {stopped.ToString(CultureInfo.InvariantCulture)}", CommandFlags.FireAndForget);
                }

                return;

            case ["p", var replica, var nonceText] when replica == ReplicaId
                && long.TryParse(nonceText, CultureInfo.InvariantCulture, out var nonce):
                Volatile.Read(ref _probe)?.TrySetResult(nonce);
                return;
        }
    }

    /// <summary>This replica's ack channel: <c>stop-id replica count</c> from replicas that stopped streams.</summary>
    private void OnAck(ChannelMessage message)
    {
        if (((string?)message.Message)?.Split(' ') is [var stopIdText, var replica, var countText]
            && long.TryParse(stopIdText, CultureInfo.InvariantCulture, out var stopId)
            && int.TryParse(countText, CultureInfo.InvariantCulture, out var count)
            && _stops.TryGetValue(stopId, out var acks))
        {
            acks.Add(replica, count);
        }
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await StepAsync();
            }
            catch (Exception ex) when (IsRedisFailure(ex))
            {
                MarkUnavailable(ex);
            }

            try
            {
                await _wake.WaitAsync(Tick, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One round of upkeep: connect and subscribe if not yet, probe while unavailable, refresh
    /// the owner records of live streams every third of their TTL.</summary>
    private async Task StepAsync()
    {
        if (_redis is null)
        {
            var configuration = ConfigurationOptions.Parse(_options.Redis);
            configuration.AbortOnConnectFail = false;
            configuration.BacklogPolicy = BacklogPolicy.FailFast; // a disconnected call fails at once instead of queueing
            configuration.AsyncTimeout = (int)Math.Max(_options.RedisTimeout.TotalMilliseconds, 10);
            configuration.ConnectTimeout = (int)_connectTimeout.TotalMilliseconds;
            configuration.ReconnectRetryPolicy = new LinearRetry(500);
            configuration.ClientName ??= "llm-gateway";
            var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
            redis.ConnectionFailed += (_, e) => MarkUnavailable(e.Exception);
            redis.ConnectionRestored += (_, _) => _wake.Release();
            _redis = redis;
        }

        if (!_redis.IsConnected)
        {
            MarkUnavailable(null);
            return;
        }

        if (_queue is null)
        {
            // Subscriptions are restored by the client after a reconnect; the probe checks they were.
            var queue = await _redis.GetSubscriber().SubscribeAsync(_channel).WaitAsync(_options.RedisTimeout, _time);
            queue.OnMessage(OnMessage);
            _queue = queue;
        }

        if (_ackQueue is null)
        {
            var acks = await _redis.GetSubscriber().SubscribeAsync(_ackChannel).WaitAsync(_options.RedisTimeout, _time);
            acks.OnMessage(OnAck);
            _ackQueue = acks;
        }

        if (!Available)
        {
            await ProbeAsync(_redis);
            return;
        }

        var now = _time.GetTimestamp();
        if (_time.GetElapsedTime(Interlocked.Read(ref _lastRefresh), now) >= _options.RedisOwnerTtl / 3)
        {
            Interlocked.Exchange(ref _lastRefresh, now);
            await RefreshAsync(_redis);
        }
    }

    /// <summary>Available again only when a message this replica publishes comes back on its channel.</summary>
    private async Task ProbeAsync(ConnectionMultiplexer redis)
    {
        var nonce = Interlocked.Increment(ref _probeNonce);
        var probe = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _probe, probe);
        await redis.GetDatabase().PublishAsync(_channel, $"p {ReplicaId} {nonce.ToString(CultureInfo.InvariantCulture)}")
            .WaitAsync(_options.RedisTimeout, _time);
        while (await probe.Task.WaitAsync(_options.RedisTimeout, _time) != nonce)
        {
            probe = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _probe, probe);
        }

        Interlocked.Exchange(ref _lastRefresh, _time.GetTimestamp());
        if (Interlocked.Exchange(ref _state, 1) != 1)
        {
            _metrics.RedisAvailability(true);
            RedisRegistryLog.Available(_logger);
            AvailabilityChanged();
            await ReconcileAsync(redis); // a failure here marks Redis away again, and the next probe retries
        }
    }

    /// <summary>Extends the owner record of every live stream; a record now held by a higher epoch means
    /// its announcement was lost (a dropped subscription), so the stream is superseded now.</summary>
    private async Task RefreshAsync(ConnectionMultiplexer redis)
    {
        var db = redis.GetDatabase();
        var work = new List<(Tracked Tracked, Task<RedisResult> Owner)>();
        foreach (var tracked in _tracked.Values)
        {
            if (tracked.Epoch > 0 && tracked.Lease.Reason == StreamOutcome.None)
            {
                work.Add((tracked, db.ScriptEvaluateAsync(RedisScripts.Refresh, [OwnerKey(tracked.Hash)],
                    [tracked.OwnerValue(ReplicaId), _ownerTtlMs])));
            }
        }

        if (work.Count == 0)
        {
            return;
        }

        await Task.WhenAll(work.Select(w => w.Owner)).WaitAsync(_options.RedisTimeout * 4, _time);
        foreach (var (tracked, owner) in work)
        {
            var value = (string?)owner.Result;
            var colon = value?.LastIndexOf(':') ?? -1;
            if (colon > 0 && long.TryParse(value.AsSpan(colon + 1), CultureInfo.InvariantCulture, out var epoch)
                && epoch > tracked.Epoch && tracked.Lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
            {
                RedisRegistryLog.SupersededRemotely(_logger, tracked.Lease.Key.Fingerprint());
            }
        }
    }

    private void MarkUnavailable(Exception? ex)
    {
        // While the first connection is still being made, a failure event or a not-yet-connected look is
        // no outage yet; after the connect timeout and one more round, it is (Redis unreachable at start).
        if (Volatile.Read(ref _state) == -1 && _time.GetElapsedTime(_startedAt) < _connectTimeout + Tick)
        {
            return;
        }

        if (Interlocked.Exchange(ref _state, 0) != 0)
        {
            _metrics.RedisAvailability(false);
            RedisRegistryLog.Unavailable(_logger, ex?.GetType().Name ?? "not connected");
            AvailabilityChanged();
        }
    }

    private static bool IsRedisFailure(Exception ex) =>
        ex is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException;

    private RedisChannel AckChannel(string replica) => RedisChannel.Literal($"{_options.RedisPrefix}:acks:{replica}");

    /// <summary>Now on this replica's clock, in microseconds since 1970: the unit of epochs.</summary>
    private long MicrosecondsNow() => _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;

    private RedisKey EpochKey(string hash) => $"{_options.RedisPrefix}:{{{hash}}}:epoch";

    private RedisKey OwnerKey(string hash) => $"{_options.RedisPrefix}:{{{hash}}}:owner";

    /// <summary>Equals the owner record while that owner waits in its debounce window (reject routes only).</summary>
    private RedisKey HeldKey(string hash) => $"{_options.RedisPrefix}:{{{hash}}}:held";

    /// <summary>Hex of the first 16 bytes of SHA-256: what Redis sees instead of a key or a tenant session.</summary>
    internal static string Hash(string value) => Hashes.Sha256Hex(value, 16);

    // Disposed by the container once per registration it was resolved through (itself and ISessionRegistry).
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        await _loop;
        if (_redis is { } redis)
        {
            await redis.DisposeAsync();
        }

        _stopping.Dispose();
        _wake.Dispose();
    }

    /// <summary>What the replicas named in a stop's owner records said they stopped.</summary>
    private sealed class StopAcks
    {
        private readonly Lock _gate = new();
        private readonly Dictionary<string, int> _stopped = new(StringComparer.Ordinal);
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private HashSet<string>? _expected;

        /// <summary>Streams the replicas that answered stopped.</summary>
        public int Count
        {
            get
            {
                lock (_gate)
                {
                    return _stopped.Values.Sum();
                }
            }
        }

        public void Add(string replica, int stopped)
        {
            lock (_gate)
            {
                _stopped[replica] = stopped;
                Check();
            }
        }

        /// <summary>Completes once every one of <paramref name="replicas"/> has answered.</summary>
        public Task ExpectAsync(HashSet<string> replicas)
        {
            lock (_gate)
            {
                _expected = replicas;
                Check();
            }

            return _all.Task;
        }

        private void Check()
        {
            if (_expected is not null && _expected.All(_stopped.ContainsKey))
            {
                _all.TrySetResult();
            }
        }
    }

    /// <summary>A local lease and what Redis said about it: epoch -1 while the claim is on its way,
    /// 0 when it was made without Redis (until Redis answers again and it is reconciled).</summary>
    private sealed class Tracked(Lease lease, string hash, long madeAt)
    {
        private long _epoch = -1;
        private long _seen;

        public Lease Lease { get; } = lease;

        public string Hash { get; } = hash;

        /// <summary>When the lease was made, in microseconds since 1970 (this replica's clock).</summary>
        public long MadeAt { get; } = madeAt;

        /// <summary>The highest epoch another replica announced for the key.</summary>
        public long Seen => Interlocked.Read(ref _seen);

        public void Saw(long epoch)
        {
            var seen = Interlocked.Read(ref _seen);
            while (epoch > seen)
            {
                var was = Interlocked.CompareExchange(ref _seen, epoch, seen);
                if (was == seen)
                {
                    return;
                }

                seen = was;
            }
        }

        public Task Claimed { get; set; } = Task.CompletedTask;

        /// <summary>Claimed with <see cref="RedisScripts.ClaimIfIdle"/> (a reject route).</summary>
        public bool IfIdle { get; init; }

        /// <summary>Claimed as waiting in a debounce window, marked so in Redis until it leaves it.</summary>
        public bool Held { get; init; }

        /// <summary>Set by the claim-if-idle: another replica's stream is active, and this claim changed nothing.</summary>
        public bool Busy { get; set; }

        public long Epoch => Interlocked.Read(ref _epoch);

        public void SetEpoch(long epoch)
        {
            var seen = Interlocked.Read(ref _epoch);
            while (epoch > seen)
            {
                var was = Interlocked.CompareExchange(ref _epoch, epoch, seen);
                if (was == seen)
                {
                    return;
                }

                seen = was;
            }
        }

        public void SetLocalOnly() => Interlocked.CompareExchange(ref _epoch, 0, -1);

        public string OwnerValue(string replica) => $"{replica}:{Epoch.ToString(CultureInfo.InvariantCulture)}";
    }
}

internal static partial class RedisRegistryLog
{
    [LoggerMessage(EventId = EventIds.RedisUnavailable, Level = LogLevel.Warning,
        Message = "Redis session registry unavailable ({Reason}); supersede and stop are local to this replica until it answers again")]
    public static partial void Unavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = EventIds.RedisAvailable, Level = LogLevel.Information, Message = "Redis session registry available; supersede and stop reach every replica")]
    public static partial void Available(ILogger logger);

    [LoggerMessage(EventId = EventIds.RedisSupersededRemotely, Level = LogLevel.Debug, Message = "Stream {Key} superseded by a newer claim on another replica")]
    public static partial void SupersededRemotely(ILogger logger, string key);

    [LoggerMessage(EventId = EventIds.RedisReconciled, Level = LogLevel.Information,
        Message = "Redis session registry: {Count} stream(s) claimed while Redis was away were claimed in Redis; the newest claim of each session won")]
    public static partial void Reconciled(ILogger logger, int count);
}
