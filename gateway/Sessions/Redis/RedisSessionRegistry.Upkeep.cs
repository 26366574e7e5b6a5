using System.Globalization;
using Gateway.Redis;
using Gateway.Telemetry;
using StackExchange.Redis;

namespace Gateway.Sessions.Redis;

/// <summary>The registry's part of the connection's rounds: reconciling after an outage, releasing owner
/// records, refreshing them (and finding a lost announcement by them).</summary>
internal sealed partial class RedisSessionRegistry
{
    /// <summary>
    /// Redis answers again: the leases this replica claimed without it (never announced, so another
    /// replica may still run an older stream for the same key) are claimed now, in the order they were
    /// made, each with the time it was made. A lease newer than the key's owner wins and is announced, so
    /// the older stream elsewhere is superseded with its notice; one older than the owner is superseded here.
    /// </summary>
    private async Task ReconcileAsync(IDatabase db)
    {
        // The streams claimed before the outage first: a message meant for them may have been lost meanwhile, and
        // their records with it (Redis restarted empty); the refresh finds a newer claim by the key's counter.
        Interlocked.Exchange(ref _lastRefresh, _time.GetTimestamp());
        await RefreshAsync(db);
        var localOnly = _tracked.Values.Where(t => t.Epoch == 0 && t.Lease.Reason == StreamOutcome.None).OrderBy(t => t.Lease.Id).ToList();
        if (localOnly.Count == 0)
        {
            return;
        }

        var claims = localOnly.Select(t => ClaimInRedisAsync(db, t, floor: Math.Max(0, t.Seen), madeAt: t.MadeAt)).ToList();
        await Task.WhenAll(claims).WaitAsync(_options.RedisTimeout * 4, _time);
        for (var i = 0; i < localOnly.Count; i++)
        {
            var (epoch, replaced) = claims[i].Result;
            if (epoch > 0)
            {
                Claimed(db, localOnly[i], epoch, replaced);
            }
            else if (localOnly[i].Lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
            {
                RedisRegistryLog.SupersededRemotely(_logger, localOnly[i].Lease.Key.Fingerprint());
            }
        }

        RedisRegistryLog.Reconciled(_logger, localOnly.Count);
    }

    private async Task ReleaseAsync(TrackedLease tracked)
    {
        await tracked.Claimed;
        if (tracked.Epoch <= 0 || _redis.Database is not { } db)
        {
            return; // no record of ours, or Redis is away: the record's TTL removes it
        }

        try
        {
            await db.ScriptEvaluateAsync(RedisScripts.Release, [_keys.Owner(tracked.Hash)], [tracked.OwnerValue(ReplicaId)])
                .WaitAsync(_options.RedisTimeout, _time);
        }
        catch (Exception ex) when (SharedRedis.IsFailure(ex))
        {
            _redis.MarkUnavailable(ex);
        }
    }

    /// <summary>The connection's round: the owner records are refreshed every third of their TTL, and at once after the
    /// connection was restored (a message sent meanwhile may have been lost; the refresh finds it by the records).</summary>
    private Task RoundAsync(IDatabase db, bool restored)
    {
        var now = _time.GetTimestamp();
        if (!restored && _time.GetElapsedTime(Interlocked.Read(ref _lastRefresh), now) < _options.RedisOwnerTtl / 3)
        {
            return Task.CompletedTask;
        }

        Interlocked.Exchange(ref _lastRefresh, now);
        return RefreshAsync(db);
    }

    /// <summary>Extends the owner record of every live stream; a record now held by a higher epoch means
    /// its announcement was lost (a dropped subscription), so the stream is superseded now.</summary>
    private async Task RefreshAsync(IDatabase db)
    {
        var work = new List<(TrackedLease Tracked, Task<RedisResult> Owner)>();
        foreach (var tracked in _tracked.Values)
        {
            if (tracked.Epoch > 0 && tracked.Lease.Reason == StreamOutcome.None)
            {
                work.Add((tracked, db.ScriptEvaluateAsync(RedisScripts.Refresh, [_keys.Owner(tracked.Hash), _keys.Epoch(tracked.Hash)],
                    [tracked.OwnerValue(ReplicaId), _ownerTtlMs, tracked.Epoch])));
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
}

internal static partial class RedisRegistryLog
{
    [LoggerMessage(EventId = EventIds.RedisSupersededRemotely, Level = LogLevel.Debug, Message = "Stream {Key} superseded by a newer claim on another replica")]
    public static partial void SupersededRemotely(ILogger logger, string key);

    [LoggerMessage(EventId = EventIds.RedisReconciled, Level = LogLevel.Information,
        Message = "Redis session registry: {Count} stream(s) claimed while Redis was away were claimed in Redis; the newest claim of each session won")]
    public static partial void Reconciled(ILogger logger, int count);
}
