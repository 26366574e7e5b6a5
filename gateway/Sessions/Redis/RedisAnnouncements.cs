using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Telemetry;
using StackExchange.Redis;

namespace Gateway.Sessions.Redis;

/// <summary>
/// The messages on the deployment's channel, read in order by every replica, and on each replica's ack
/// channel: how they are written, parsed and handled.
/// <list type="bullet">
/// <item><c>c hash epoch replica lease</c>: a claim (published by <see cref="RedisScripts.Claim"/>); a replica
/// cancels its own lease for that key when another replica announced a higher epoch;</item>
/// <item><c>s replica stop-id hash,hash,...</c>: an explicit stop; a replica that stopped streams answers on the
/// stopper's ack channel with <c>stop-id replica count</c>;</item>
/// <item><c>p replica nonce</c>: a probe, heard only by the replica that sent it.</item>
/// </list>
/// </summary>
internal sealed class RedisAnnouncements
{
    private readonly RedisKeys _keys;
    private readonly string _replicaId;
    private readonly ConcurrentDictionary<string, TrackedLease> _tracked;
    private readonly Func<IEnumerable<string>, int> _stopHere;
    private readonly RedisRegistryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<long, StopAcks> _stops = new();
    private long _lastStopId;
    private TaskCompletionSource<long>? _probe;
    private long _probeNonce;

    /// <param name="tracked">The registry's leases by key hash, read to cancel the ones superseded elsewhere.</param>
    /// <param name="stopHere">Stops this replica's streams under the key hashes; returns how many it ended.</param>
    public RedisAnnouncements(RedisKeys keys, string replicaId, ConcurrentDictionary<string, TrackedLease> tracked,
        Func<IEnumerable<string>, int> stopHere, RedisRegistryOptions options, TimeProvider time, ILogger logger)
    {
        _keys = keys;
        _replicaId = replicaId;
        _tracked = tracked;
        _stopHere = stopHere;
        _options = options;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Announces a stop of the streams under <paramref name="hashes"/> and counts what each replica named in an
    /// owner record says it stopped, waited for at most the Redis timeout (a record left by a crashed replica,
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

            // Read before announcing, on the same connection: an owner that stops at once has not yet
            // removed its record when the reads run.
            var announce = db.PublishAsync(_keys.Channel,
                $"s {_replicaId} {stopId.ToString(CultureInfo.InvariantCulture)} {string.Join(',', hashes)}");
            await Task.WhenAll(owners.Append<Task>(announce)).WaitAsync(_options.RedisTimeout, _time, cancellationToken);
            var expected = new HashSet<string>(StringComparer.Ordinal);
            foreach (var owner in owners)
            {
                var value = (string?)owner.Result;
                var colon = value?.LastIndexOf(':') ?? -1;
                if (colon > 0 && value.AsSpan(0, colon) is var replica && !replica.SequenceEqual(_replicaId))
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
        catch (Exception ex) when (RedisConnection.IsRedisFailure(ex))
        {
            // Not answered in time: what acknowledged so far is what is known to have stopped.
        }
        finally
        {
            _stops.TryRemove(stopId, out _);
        }

        return acks.Count;
    }

    /// <summary>Publishes a probe and completes once it came back on the channel: this replica hears its own channel.</summary>
    public async Task ProbeAsync(IDatabase db)
    {
        var nonce = Interlocked.Increment(ref _probeNonce);
        var probe = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _probe, probe);
        await db.PublishAsync(_keys.Channel, $"p {_replicaId} {nonce.ToString(CultureInfo.InvariantCulture)}")
            .WaitAsync(_options.RedisTimeout, _time);
        while (await probe.Task.WaitAsync(_options.RedisTimeout, _time) != nonce)
        {
            probe = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _probe, probe);
        }
    }

    /// <summary>The channel, read in order: claims, stops and this replica's probes. Each message costs a
    /// dictionary look-up or a few: it runs on the one ordered reader every claim waits behind.</summary>
    public void OnMessage(ChannelMessage message, ConnectionMultiplexer redis)
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

                if (replica == _replicaId)
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

            case ["s", var replica, var stopId, var hashes] when replica != _replicaId:
                var stopped = _stopHere(hashes.Split(','));
                if (stopped > 0)
                {
                    // Fire and forget: nothing on this ordered reader waits for Redis.
                    redis.GetDatabase().Publish(_keys.AckChannel(replica),
                        $"{stopId} {_replicaId} {stopped.ToString(CultureInfo.InvariantCulture)}", CommandFlags.FireAndForget);
                }

                return;

            case ["p", var replica, var nonceText] when replica == _replicaId
                && long.TryParse(nonceText, CultureInfo.InvariantCulture, out var nonce):
                Volatile.Read(ref _probe)?.TrySetResult(nonce);
                return;
        }
    }

    /// <summary>This replica's ack channel: <c>stop-id replica count</c> from replicas that stopped streams.</summary>
    public void OnAck(ChannelMessage message)
    {
        if (((string?)message.Message)?.Split(' ') is [var stopIdText, var replica, var countText]
            && long.TryParse(stopIdText, CultureInfo.InvariantCulture, out var stopId)
            && int.TryParse(countText, CultureInfo.InvariantCulture, out var count)
            && _stops.TryGetValue(stopId, out var acks))
        {
            acks.Add(replica, count);
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
