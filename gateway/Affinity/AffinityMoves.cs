using System.Collections.Concurrent;
using System.Globalization;
using Gateway.Redis;
using Gateway.Sessions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gateway.Affinity;

/// <summary>
/// The sessions that moved off their first choice, and where to: in Redis while it answers (so every
/// replica sends a moved session to the same place) and in a bounded local table (the answer while
/// Redis is down or not configured). Sessions that never moved are not stored: their destination is
/// computed (<see cref="Rendezvous"/>). Redis keys are <c>prefix:affinity:</c> and the scope's hash,
/// never a session id.
/// </summary>
internal sealed class AffinityMoves
{
    // Moves to the new destination only if the session is still where the mover saw it (nowhere, or the
    // failed destination): of two replicas moving one session at once, the first one's choice stands.
    private const string MoveScript = """
        local current = redis.call('GET', KEYS[1])
        if current == false or current == ARGV[1] then
          redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
          return ARGV[2]
        end
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return current
        """;

    private readonly ConcurrentDictionary<string, Entry> _local = new(StringComparer.Ordinal);
    private readonly Lock _writing = new();
    private readonly SharedRedis _redis;
    private readonly TimeSpan _ttl;
    private readonly int _capacity;
    private readonly TimeSpan _redisTimeout;
    private readonly string _ttlMs;
    private readonly TimeProvider _time;
    private readonly ILogger<AffinityMoves> _logger;

    public AffinityMoves(IOptions<AffinityOptions> options, SharedRedis redis,
        TimeProvider time, ILogger<AffinityMoves> logger)
    {
        _redis = redis;
        _ttl = options.Value.MoveTtl;
        _capacity = options.Value.MaxRememberedMoves;
        _redisTimeout = redis.Timeout;
        _ttlMs = ((long)_ttl.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
        _time = time;
        _logger = logger;
    }

    /// <summary>Where <paramref name="scope"/> moved to, or null when it never moved (or the move expired).</summary>
    public async ValueTask<string?> FindAsync(AffinityScope scope, CancellationToken cancellationToken)
    {
        var local = FindLocal(scope.Id);
        if (_redis.Database is not { } db)
        {
            return local;
        }

        try
        {
            RedisKey key = RedisKey(scope);
            var stored = await db.StringGetSetExpiryAsync(key, _ttl).WaitAsync(_redisTimeout, _time, cancellationToken);
            if (stored.HasValue)
            {
                var destination = (string)stored!;
                SetLocal(scope.Id, destination);
                return destination;
            }

            if (local is not null)
            {
                // A move made here while Redis was away: tell the other replicas, unless one of them moved it since.
                await db.StringSetAsync(key, local, _ttl, When.NotExists).WaitAsync(_redisTimeout, _time, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            AffinityLog.RedisFailed(_logger, ex.GetType().Name);
        }

        return local;
    }

    /// <summary>Moves <paramref name="scope"/> from <paramref name="from"/> (null: its first choice) to
    /// <paramref name="to"/>, unless another replica moved it already; returns where it now goes.</summary>
    public async ValueTask<string> MoveAsync(AffinityScope scope, string? from, string to, CancellationToken cancellationToken)
    {
        var agreed = MoveLocal(scope.Id, from, to);
        if (_redis.Database is not { } db)
        {
            return agreed;
        }

        try
        {
            var result = await db.ScriptEvaluateAsync(MoveScript, [RedisKey(scope)], [from ?? "", to, _ttlMs])
                .WaitAsync(_redisTimeout, _time, cancellationToken);
            agreed = (string)result!;
            SetLocal(scope.Id, agreed);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            AffinityLog.RedisFailed(_logger, ex.GetType().Name);
        }

        return agreed;
    }

    private string RedisKey(AffinityScope scope) => $"{_redis.KeyPrefix}:affinity:{scope.Id}";

    private string? FindLocal(string id)
    {
        if (!_local.TryGetValue(id, out var entry))
        {
            return null;
        }

        var now = _time.GetTimestamp();
        if (entry.ExpiresAt <= now)
        {
            _local.TryRemove(KeyValuePair.Create(id, entry));
            return null;
        }

        // Sliding: a session in use keeps its move.
        _local.TryUpdate(id, entry with { ExpiresAt = ExpiryFrom(now) }, entry);
        return entry.Destination;
    }

    private string MoveLocal(string id, string? from, string to)
    {
        lock (_writing)
        {
            var current = FindLocal(id);
            if (current is not null && current != from)
            {
                return current;
            }

            Store(id, to);
            return to;
        }
    }

    private void SetLocal(string id, string destination)
    {
        if (_local.TryGetValue(id, out var entry) && entry.Destination == destination)
        {
            return; // FindLocal already slid its expiry
        }

        lock (_writing)
        {
            Store(id, destination);
        }
    }

    private void Store(string id, string destination)
    {
        if (_local.Count >= _capacity && !_local.ContainsKey(id))
        {
            MakeRoom();
        }

        _local[id] = new Entry(destination, ExpiryFrom(_time.GetTimestamp()));
    }

    /// <summary>Drops expired moves, then the ones closest to expiring (the least recently used) until a
    /// tenth of the table is free. Runs only when a move is made into a full table.</summary>
    private void MakeRoom()
    {
        var now = _time.GetTimestamp();
        foreach (var (id, entry) in _local)
        {
            if (entry.ExpiresAt <= now)
            {
                _local.TryRemove(id, out _);
            }
        }

        var excess = _local.Count - (_capacity - Math.Max(1, _capacity / 10));
        if (excess <= 0)
        {
            return;
        }

        foreach (var (id, _) in _local.OrderBy(e => e.Value.ExpiresAt).Take(excess).ToArray())
        {
            _local.TryRemove(id, out _);
        }
    }

    private long ExpiryFrom(long now) => now + (long)(_ttl.TotalSeconds * _time.TimestampFrequency);

    /// <summary>For tests: the moves this replica remembers.</summary>
    internal int LocalCount => _local.Count;

    private readonly record struct Entry(string Destination, long ExpiresAt);
}
