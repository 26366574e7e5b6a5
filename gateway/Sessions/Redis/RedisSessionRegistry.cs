using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Redis;
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
/// the key's next epoch (INCR) and an owner record <c>replica:epoch</c> with a TTL; the script returns the
/// record it replaced, and when that was another replica's, the claimer sends <c>c hash epoch replica lease</c>
/// to that replica's channel only. A claim that supersedes nobody elsewhere sends nothing;</item>
/// <item>a replica cancels its own lease for the key when it hears of a higher epoch, or when its own claim
/// answers with an epoch lower than one it heard meanwhile; so of two simultaneous claims the higher epoch
/// survives;</item>
/// <item>an explicit stop reads the owner records of the session's keys (one per session route) and sends
/// <c>s replica stop-id hash,hash,...</c> to the replicas named there only; each answers on the stopper's
/// channel with <c>a stop-id replica count</c>: a stop counts only streams that stopped.</item>
/// </list>
/// Keys and messages carry SHA-256 hashes of <see cref="SessionKey.Value"/>, never a session id or a
/// credential. When Redis does not answer, claims are local only and nothing waits (a claim in flight
/// waits at most the Redis timeout); a probe brings cross-replica mode back, and the leases claimed
/// locally meanwhile are then claimed in Redis, where the newest claim of each key wins.
/// A message lost on the way (a reconnect, a cluster failover) is found by the upkeep: an owner record held by a
/// higher epoch supersedes the stream at the next refresh, which runs at once after the connection was restored.
/// This class holds the claims; <see cref="RedisAnnouncements"/> the messages, <see cref="SharedRedis"/> the connection,
/// its probe and its upkeep rounds; RedisSessionRegistry.Upkeep.cs what this class does in those rounds.
/// </summary>
internal sealed partial class RedisSessionRegistry : ISessionRegistry
{
    private const int StripeCount = 64;

    private readonly SessionRegistry _local;
    private readonly SharedRedis _redis;
    private readonly RedisOptions _options;
    private readonly IProxyStateLookup _routes;
    private readonly TimeProvider _time;
    private readonly ILogger<RedisSessionRegistry> _logger;
    private readonly ConcurrentDictionary<string, TrackedLease> _tracked = new(StringComparer.Ordinal);
    private readonly Lock[] _stripes = [.. Enumerable.Range(0, StripeCount).Select(_ => new Lock())];
    private readonly RedisKeys _keys;
    private readonly RedisAnnouncements _announcements;
    private readonly string _ownerTtlMs;
    private readonly string _epochTtlMs;
    private long _lastRefresh;

    public RedisSessionRegistry(SessionRegistry local, SharedRedis redis, IOptions<RedisOptions> options, IProxyStateLookup routes,
        TimeProvider time, ILogger<RedisSessionRegistry> logger)
    {
        _local = local;
        _redis = redis;
        _options = options.Value;
        _routes = routes;
        _time = time;
        _logger = logger;
        _keys = new RedisKeys(_options.RedisPrefix);
        _ownerTtlMs = ((long)_options.RedisOwnerTtl.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        // The counter only has to outlive the gap between two claims of a conversation; a counter
        // created afresh starts above every older epoch anyway (see RedisScripts.Claim).
        _epochTtlMs = ((long)Math.Max(_options.RedisOwnerTtl.TotalMilliseconds * 4, 600_000)).ToString(CultureInfo.InvariantCulture);
        _announcements = new RedisAnnouncements(redis, _keys, _tracked, hashes => CancelHere(hashes, StreamOutcome.Stopped), time, logger);
        redis.Listen(_announcements.OnMessage);
        redis.AddUpkeep(ReconcileAsync, RoundAsync);
    }

    /// <summary>This process's id in owner records and messages (random per start).</summary>
    public string ReplicaId => _redis.ReplicaId;

    /// <summary>Leases this replica tracks in Redis (its live streams on session routes), for tests and diagnostics.</summary>
    public int TrackedCount => _tracked.Count;

    /// <summary>The epoch this replica's live stream of <paramref name="key"/> holds in Redis: 0 while it was claimed
    /// locally only (Redis away), -1 while its claim is on its way or when it tracks none; for tests and diagnostics.</summary>
    public long EpochOf(SessionKey key) => _tracked.TryGetValue(Hash(key.Value), out var tracked) ? tracked.Epoch : -1;

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
        if (!tracked.Held || tracked.Epoch <= 0 || _redis.Database is not { } db)
        {
            return lease.Reason == StreamOutcome.None;
        }

        try
        {
            var kept = (long)await db.ScriptEvaluateAsync(RedisScripts.LeaveWindow,
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
        catch (Exception ex) when (SharedRedis.IsFailure(ex))
        {
            _redis.MarkUnavailable(ex);
            return lease.Reason == StreamOutcome.None;
        }
    }

    public void Release(Lease lease)
    {
        var hash = Hash(lease.Key.Value);
        if (_tracked.TryGetValue(hash, out var tracked) && tracked.Lease == lease)
        {
            _tracked.TryRemove(KeyValuePair.Create(hash, tracked));
            _ = ReleaseAsync(tracked);
        }

        _local.Release(lease); // last: a wait for the local registry to empty finds nothing tracked either
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
        if (_redis.Database is not { } db || hashes.Count == 0)
        {
            return cancelled;
        }

        return cancelled + await _announcements.StopAsync(db, hashes, cancellationToken);
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
        if (tracked.Lease.Reason == StreamOutcome.Superseded || _redis.Database is not { } db)
        {
            tracked.SetLocalOnly();
            return;
        }

        try
        {
            // Above every epoch this replica has seen for the key, whatever Redis's counter says.
            var floor = previous is null ? 0 : Math.Max(previous.Epoch, previous.Seen) + 1;
            var (epoch, replaced) = await (tracked.IfIdle ? ClaimIfIdleInRedisAsync(db, tracked, floor) : ClaimInRedisAsync(db, tracked, floor, madeAt: 0))
                .WaitAsync(_options.RedisTimeout, _time);
            if (epoch == 0)
            {
                tracked.Busy = true; // another replica's stream is active: nothing was changed in Redis
                return;
            }

            Claimed(db, tracked, epoch, replaced);
        }
        catch (Exception ex) when (SharedRedis.IsFailure(ex))
        {
            tracked.SetLocalOnly();
            _redis.MarkUnavailable(ex);
        }
    }

    /// <summary>The claim holds <paramref name="epoch"/>: the replica it replaced is told, and the lease is superseded
    /// now if a higher epoch was heard while the claim was on its way (the message came before the reply).</summary>
    private void Claimed(IDatabase db, TrackedLease tracked, long epoch, string? replaced)
    {
        tracked.SetEpoch(epoch);
        _announcements.Superseded(db, tracked, epoch, replaced);
        if (tracked.Seen > epoch && tracked.Lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
        {
            RedisRegistryLog.SupersededRemotely(_logger, tracked.Lease.Key.Fingerprint());
        }
    }

    /// <summary>Runs <see cref="RedisScripts.Claim"/>: the epoch, or minus the owner's when a reconciling
    /// claim (<paramref name="madeAt"/> above 0) lost to a newer one; and the owner record it replaced.</summary>
    private async Task<(long Epoch, string? Replaced)> ClaimInRedisAsync(IDatabase db, TrackedLease tracked, long floor, long madeAt)
    {
        var reply = await db.ScriptEvaluateAsync(RedisScripts.Claim,
            [_keys.Epoch(tracked.Hash), _keys.Owner(tracked.Hash)], [ReplicaId, _ownerTtlMs, _epochTtlMs, floor, madeAt]);
        return ParseClaim(reply);
    }

    /// <summary>Runs <see cref="RedisScripts.ClaimIfIdle"/>: epoch 0 when another replica's stream is active.</summary>
    private async Task<(long Epoch, string? Replaced)> ClaimIfIdleInRedisAsync(IDatabase db, TrackedLease tracked, long floor)
    {
        var reply = await db.ScriptEvaluateAsync(RedisScripts.ClaimIfIdle,
            [_keys.Epoch(tracked.Hash), _keys.Owner(tracked.Hash), _keys.Held(tracked.Hash)],
            [ReplicaId, _ownerTtlMs, _epochTtlMs, floor, 0, tracked.Held ? 1 : 0]);
        return ParseClaim(reply);
    }

    /// <summary>A claim script's <c>{ epoch, replaced }</c>; <c>busy</c> reads as epoch 0.</summary>
    private static (long Epoch, string? Replaced) ParseClaim(RedisResult reply)
    {
        var parts = (RedisResult[])reply!;
        var epoch = (string)parts[0]!;
        var replaced = (string?)parts[1];
        return (epoch == "busy" ? 0 : long.Parse(epoch, CultureInfo.InvariantCulture), string.IsNullOrEmpty(replaced) ? null : replaced);
    }

    /// <summary>Now on this replica's clock, in microseconds since 1970: the unit of epochs.</summary>
    private long MicrosecondsNow() => _time.GetUtcNow().ToUnixTimeMilliseconds() * 1000;

    /// <summary>Hex of the first 16 bytes of SHA-256: what Redis sees instead of a key or a tenant session.</summary>
    internal static string Hash(string value) => Hashes.Sha256Hex(value, 16);

}
