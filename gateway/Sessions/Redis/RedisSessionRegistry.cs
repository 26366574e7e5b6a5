using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using Gateway.Telemetry;
using Gateway.Utilities;
using Microsoft.Extensions.Options;
using StackExchange.Redis;
using Yarp.ReverseProxy;

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
/// This class holds the claims; <see cref="RedisAnnouncements"/> the messages, <see cref="RedisConnection"/>
/// the connection, its probe and its upkeep rounds; RedisSessionRegistry.Upkeep.cs what this class does in those rounds.
/// </summary>
internal sealed partial class RedisSessionRegistry : ISessionRegistry, IAsyncDisposable
{
    private const int StripeCount = 64;

    private readonly SessionRegistry _local;
    private readonly RedisRegistryOptions _options;
    private readonly IProxyStateLookup _routes;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisSessionRegistry> _logger;
    private readonly ConcurrentDictionary<string, TrackedLease> _tracked = new(StringComparer.Ordinal);
    private readonly Lock[] _stripes = [.. Enumerable.Range(0, StripeCount).Select(_ => new Lock())];
    private readonly RedisKeys _keys;
    private readonly RedisAnnouncements _announcements;
    private readonly RedisConnection _connection;
    private readonly string _ownerTtlMs;
    private readonly string _epochTtlMs;

    public RedisSessionRegistry(SessionRegistry local, IOptions<RedisRegistryOptions> options, IProxyStateLookup routes,
        GatewayMetrics metrics, TimeProvider time, ILogger<RedisSessionRegistry> logger)
    {
        _local = local;
        _options = options.Value;
        _routes = routes;
        _time = time;
        _logger = logger;
        _keys = new RedisKeys(_options.RedisPrefix);
        _ownerTtlMs = ((long)_options.RedisOwnerTtl.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        // The counter only has to outlive the gap between two claims of a conversation; a counter
        // created afresh starts above every older epoch anyway (see RedisScripts.Claim).
        _epochTtlMs = ((long)Math.Max(_options.RedisOwnerTtl.TotalMilliseconds * 4, 600_000)).ToString(CultureInfo.InvariantCulture);
        _announcements = new RedisAnnouncements(_keys, ReplicaId, _tracked, hashes => CancelHere(hashes, StreamOutcome.Stopped),
            _options, time, logger);
        _connection = new RedisConnection(_options, _keys, ReplicaId, _announcements, RefreshAsync, ReconcileAsync, metrics, time, logger);
    }

    /// <summary>This process's id in owner records and announcements (random per start).</summary>
    public string ReplicaId { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>True while Redis answers and this replica hears its own channel: cross-replica mode.</summary>
    public bool Available => _connection.Available;

    /// <summary>The Redis database while <see cref="Available"/>, for other features that share state across
    /// replicas (session affinity, token budgets); null while this replica is local-only.</summary>
    public IDatabase? Database => Available ? _connection.Multiplexer?.GetDatabase() : null;

    /// <summary>The prefix every key and channel of this deployment starts with (<c>Gateway:Sessions:RedisPrefix</c>).</summary>
    public string KeyPrefix => _options.RedisPrefix;

    /// <summary>Completes once <see cref="Available"/> equals <paramref name="available"/> (at once if it does).</summary>
    public Task WaitForAvailabilityAsync(bool available, CancellationToken cancellationToken) =>
        _connection.WaitForAvailabilityAsync(available, cancellationToken);

    /// <summary>Starts connecting in the background: a Redis that is down or slow never delays start-up.</summary>
    public void Start() => _connection.Start();

    /// <summary>
    /// Supersedes locally at once, then waits for the Redis claim (bounded by the Redis timeout, never
    /// faulting): a stream whose upstream request has begun holds an epoch, so any claim made after it
    /// began, here or on another replica, gets a higher one and supersedes it. Without the wait, a claim
    /// delayed on its way to Redis could be ordered after a newer request's, and the newer one would lose.
    /// </summary>
    public async ValueTask<Lease> ClaimAsync(SessionKey key, long? arrivedAt = null)
    {
        var hash = Hash(key.Value);
        TrackedLease tracked;
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
            tracked = new TrackedLease(lease, hash, MicrosecondsNow());
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
        TrackedLease tracked;
        Lease? replaced;
        lock (_stripes[StringComparer.Ordinal.GetHashCode(hash) & (StripeCount - 1)])
        {
            var lease = _local.ClaimIfIdle(key, arrivedAt, held, out replaced);
            if (lease is null || lease.Token.IsCancellationRequested)
            {
                return lease;
            }

            _tracked.TryGetValue(hash, out var previous);
            tracked = new TrackedLease(lease, hash, MicrosecondsNow()) { IfIdle = true, Held = held };
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
        if (!tracked.Held || tracked.Epoch <= 0 || !Available || _connection.Multiplexer is not { } redis)
        {
            return lease.Reason == StreamOutcome.None;
        }

        try
        {
            var kept = (long)await redis.GetDatabase().ScriptEvaluateAsync(RedisScripts.LeaveWindow,
                [_keys.Owner(hash), _keys.Held(hash)], [tracked.OwnerValue(ReplicaId)]).WaitAsync(_options.RedisTimeout, _time);
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
        catch (Exception ex) when (RedisConnection.IsRedisFailure(ex))
        {
            _connection.MarkUnavailable(ex);
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
        if (!Available || _connection.Multiplexer is not { } redis || hashes.Count == 0)
        {
            return cancelled;
        }

        return cancelled + await _announcements.StopAsync(redis.GetDatabase(), hashes, cancellationToken);
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

    private async Task OrderAsync(TrackedLease tracked, TrackedLease? previous)
    {
        if (previous is not null)
        {
            await previous.Claimed; // never faults; keeps this replica's claims for one key in order
        }

        // Superseded here before its turn came: the newer local claim announces instead.
        if (tracked.Lease.Reason == StreamOutcome.Superseded || !Available || _connection.Multiplexer is not { } redis)
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
        catch (Exception ex) when (RedisConnection.IsRedisFailure(ex))
        {
            tracked.SetLocalOnly();
            _connection.MarkUnavailable(ex);
        }
    }

    /// <summary>Runs <see cref="RedisScripts.Claim"/>: the epoch, or minus the owner's when a reconciling
    /// claim (<paramref name="madeAt"/> above 0) lost to a newer one.</summary>
    private async Task<long> ClaimInRedisAsync(IDatabase db, TrackedLease tracked, long floor, long madeAt)
    {
        var epoch = await db.ScriptEvaluateAsync(RedisScripts.Claim,
            [_keys.Epoch(tracked.Hash), _keys.Owner(tracked.Hash)],
            [ReplicaId, _ownerTtlMs, _epochTtlMs, _keys.Channel.ToString(), tracked.Hash, tracked.Lease.Id, floor, madeAt]);
        return long.Parse((string)epoch!, CultureInfo.InvariantCulture);
    }

    /// <summary>Runs <see cref="RedisScripts.ClaimIfIdle"/>: the epoch, or 0 when another replica's stream is active.</summary>
    private async Task<long> ClaimIfIdleInRedisAsync(IDatabase db, TrackedLease tracked, long floor)
    {
        var epoch = (string?)await db.ScriptEvaluateAsync(RedisScripts.ClaimIfIdle,
            [_keys.Epoch(tracked.Hash), _keys.Owner(tracked.Hash), _keys.Held(tracked.Hash)],
            [ReplicaId, _ownerTtlMs, _epochTtlMs, _keys.Channel.ToString(), tracked.Hash, tracked.Lease.Id, floor, 0, tracked.Held ? 1 : 0]);
        return epoch == "busy" ? 0 : long.Parse(epoch!, CultureInfo.InvariantCulture);
    }

    /// <summary>Now on this replica's clock, in microseconds since 1970: the unit of epochs.</summary>
    private long MicrosecondsNow() => _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;

    /// <summary>Hex of the first 16 bytes of SHA-256: what Redis sees instead of a key or a tenant session.</summary>
    internal static string Hash(string value) => Hashes.Sha256Hex(value, 16);

    // Disposed by the container once per registration it was resolved through (itself and ISessionRegistry).
    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}
