using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Redis;
using Gateway.Telemetry;
using StackExchange.Redis;

namespace Gateway.Sessions.Redis;

/// <summary>
/// The messages between replicas, each sent on the receiving replica's own channel (<see cref="SharedRedis.ReplicaChannel"/>),
/// so a message reaches only the replica it is for: how they are written, parsed and handled.
/// <list type="bullet">
/// <item><c>c hash epoch replica lease</c>: a claim, sent by the claiming replica to the replica whose owner record
/// the claim replaced (<see cref="RedisScripts.Claim"/> returns it); that replica cancels its lease for the key when
/// the epoch is higher than its own. A claim that replaced no other replica's record sends nothing;</item>
/// <item><c>s replica stop-id hash,hash,...</c>: an explicit stop, sent to each replica named in an owner record of
/// those keys; one that stopped streams answers on the stopper's channel with <c>a stop-id replica count</c>.</item>
/// </list>
/// </summary>
internal sealed class RedisAnnouncements
{
    private readonly SharedRedis _redis;
    private readonly RedisKeys _keys;
    private readonly ConcurrentDictionary<string, TrackedLease> _tracked;
    private readonly Func<IEnumerable<string>, int> _stopHere;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<long, StopAcks> _stops = new();
    private long _lastStopId;

    /// <param name="tracked">The registry's leases by key hash, read to cancel the ones superseded elsewhere.</param>
    /// <param name="stopHere">Stops this replica's streams under the key hashes; returns how many it ended.</param>
    public RedisAnnouncements(SharedRedis redis, RedisKeys keys, ConcurrentDictionary<string, TrackedLease> tracked,
        Func<IEnumerable<string>, int> stopHere, TimeProvider time, ILogger logger)
    {
        _redis = redis;
        _keys = keys;
        _tracked = tracked;
        _stopHere = stopHere;
        _time = time;
        _logger = logger;
    }

    private string ReplicaId => _redis.ReplicaId;

    /// <summary>Tells <paramref name="owner"/> (an owner record <c>replica:epoch</c> the claim replaced) that
    /// <paramref name="tracked"/>'s claim now holds the key: nothing when the record was this replica's or none.</summary>
    public void Superseded(IDatabase db, TrackedLease tracked, long epoch, string? owner)
    {
        var colon = owner?.LastIndexOf(':') ?? -1;
        if (colon <= 0 || owner.AsSpan(0, colon).SequenceEqual(ReplicaId))
        {
            return;
        }

        _redis.Send(db, owner![..colon], string.Create(CultureInfo.InvariantCulture,
            $"c {tracked.Hash} {epoch} {ReplicaId} {tracked.Lease.Id}"));
    }

    /// <summary>
    /// Sends a stop of the streams under <paramref name="hashes"/> to each replica named in their owner records, and
    /// counts what each says it stopped, waited for at most the Redis timeout (a record left by a crashed replica,
    /// or by a release skipped while Redis was away, answers nothing and counts nothing).
    /// </summary>
    public async Task<int> StopAsync(IDatabase db, List<string> hashes, CancellationToken cancellationToken)
    {
        var startedAt = _time.GetTimestamp();
        var stopId = Interlocked.Increment(ref _lastStopId);
        var acks = new StopAcks();
        _stops[stopId] = acks;
        try
        {
            var owners = new Task<RedisValue>[hashes.Count];
            for (var i = 0; i < hashes.Count; i++)
            {
                owners[i] = db.StringGetAsync(_keys.Owner(hashes[i]));
            }

            await Task.WhenAll(owners).WaitAsync(_redis.Timeout, _time, cancellationToken);
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
                var message = $"s {ReplicaId} {stopId.ToString(CultureInfo.InvariantCulture)} {string.Join(',', hashes)}";
                foreach (var replica in expected)
                {
                    _redis.Send(db, replica, message);
                }

                var left = _redis.Timeout - _time.GetElapsedTime(startedAt);
                await acks.ExpectAsync(expected).WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero, _time, cancellationToken);
            }
        }
        catch (Exception ex) when (SharedRedis.IsFailure(ex))
        {
            // Not answered in time: what acknowledged so far is what is known to have stopped.
        }
        finally
        {
            _stops.TryRemove(stopId, out _);
        }

        return acks.Count;
    }

    /// <summary>This replica's channel, read in order. Each message costs a dictionary look-up or a few: it runs on the
    /// one ordered reader of the channel.</summary>
    public void OnMessage(string text)
    {
        var parts = text.Split(' ');
        switch (parts)
        {
            case ["c", var hash, var epochText, var replica, _]
                when replica != ReplicaId && long.TryParse(epochText, CultureInfo.InvariantCulture, out var epoch):
                if (!_tracked.TryGetValue(hash, out var tracked))
                {
                    return;
                }

                // Seen first, then our epoch read: a claim reply that lands meanwhile sets the epoch first and then
                // reads Seen (RedisSessionRegistry.OrderAsync), so one of the two sides sees the other and cancels.
                // Epoch unknown (-1): our claim is on its way, and is compared when it answers. Local only (0):
                // newer if claimed after ours was made (an epoch is at least the Redis clock's microseconds then).
                tracked.Saw(epoch);
                var mine = tracked.Epoch;
                var newer = mine > 0 ? epoch > mine : mine == 0 && epoch > tracked.MadeAt;
                if (newer && tracked.Lease.TryCancel(StreamOutcome.Superseded, _time.GetTimestamp()))
                {
                    RedisRegistryLog.SupersededRemotely(_logger, tracked.Lease.Key.Fingerprint());
                }

                return;

            case ["s", var replica, var stopId, var hashes] when replica != ReplicaId:
                var stopped = _stopHere(hashes.Split(','));
                if (_redis.Database is { } db)
                {
                    // Fire and forget: nothing on this ordered reader waits for Redis. Answered even when nothing
                    // stopped, so the stopper does not wait out its timeout for a stream that ended meanwhile.
                    _redis.Send(db, replica, $"a {stopId} {ReplicaId} {stopped.ToString(CultureInfo.InvariantCulture)}");
                }

                return;

            case ["a", var stopIdText, var replica, var countText]
                when long.TryParse(stopIdText, CultureInfo.InvariantCulture, out var stopId)
                && int.TryParse(countText, CultureInfo.InvariantCulture, out var count)
                && _stops.TryGetValue(stopId, out var acks):
                acks.Add(replica, count);
                return;
        }
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
}
