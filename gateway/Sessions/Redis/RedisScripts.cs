namespace Gateway.Sessions.Redis;

/// <summary>
/// The registry's Lua scripts. Each runs atomically on the Redis server, which is what orders claims
/// made on different replicas.
/// </summary>
internal static class RedisScripts
{
    /// <summary>
    /// A claim: the key's next epoch, the owner record, and the announcement, in one step, so epochs are
    /// announced in the order they were handed out. A counter that does not exist yet (first claim, TTL
    /// passed, or a Redis that restarted empty) starts from the server's clock in microseconds, so a new
    /// epoch is above every epoch a stream still running from before could hold.
    /// KEYS: epoch, owner. ARGV: replica, owner TTL ms, epoch TTL ms, channel, key hash, lease id.
    /// Returns the epoch.
    /// </summary>
    public const string Claim = """
        local e = redis.call('INCR', KEYS[1])
        if e == 1 then
          local t = redis.call('TIME')
          e = tonumber(t[1]) * 1000000 + tonumber(t[2])
          redis.call('SET', KEYS[1], string.format('%.0f', e))
        end
        local epoch = string.format('%.0f', e)
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        redis.call('SET', KEYS[2], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
        redis.call('PUBLISH', ARGV[4], 'c ' .. ARGV[5] .. ' ' .. epoch .. ' ' .. ARGV[1] .. ' ' .. ARGV[6])
        return epoch
        """;

    /// <summary>
    /// Keeps a live stream's owner record: extends it while it is still this stream's, writes it again if
    /// it is gone (expired during an outage, or Redis restarted empty), and otherwise leaves the newer
    /// owner alone. KEYS: owner. ARGV: owner value, TTL ms. Returns the owner value now in force.
    /// </summary>
    public const string Refresh = """
        local v = redis.call('GET', KEYS[1])
        if v == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return v
        end
        if not v then
          redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
          return ARGV[1]
        end
        return v
        """;

    /// <summary>Compare-and-delete: only the owner removes its record. KEYS: owner. ARGV: owner value.</summary>
    public const string Release = """
        if redis.call('GET', KEYS[1]) == ARGV[1] then
          return redis.call('DEL', KEYS[1])
        end
        return 0
        """;
}
