namespace Gateway.Sessions.Redis;

/// <summary>
/// The registry's Lua scripts. Each runs atomically on the Redis server, which is what orders claims
/// made on different replicas.
/// </summary>
internal static class RedisScripts
{
    /// <summary>
    /// A claim: the key's next epoch and the owner record in one step, returning the owner record it replaced
    /// (whose replica, if another, the claimer tells: <see cref="RedisAnnouncements.Superseded"/>). Every key is in the
    /// session key's hash slot and nothing is published from the script, so it runs as is on a Redis Cluster. An epoch is the counter's next value, but never below
    /// a floor: the server's clock in microseconds, and the highest epoch the claiming replica has seen
    /// for the key; so epochs keep rising across a Redis that restarted empty or a failover replica that
    /// missed the last INCRs, and a newer claim is always above the epoch of a stream still running.
    /// A reconciling claim (a lease made while the replica thought Redis away, claimed when it answers
    /// again) names the time it was made instead of the server's clock, and loses to another replica's
    /// owner whose epoch is not older than that: the newest claim wins. (An owner record of the claiming
    /// replica is its own: that lease's claim, sent before Redis froze and run since, or an older lease's
    /// record whose release was skipped.)
    /// KEYS: epoch, owner. ARGV: replica, owner TTL ms, epoch TTL ms, floor, made at (microseconds since 1970; 0 for a claim made now).
    /// Returns { epoch, replaced owner record or '' }, or { minus the owner's epoch, '' } when a reconciling claim lost.
    /// </summary>
    public const string Claim = ClaimBody + """
        return { epoch, previous or '' }
        """;

    /// <summary>
    /// <see cref="Claim"/> only while the key is idle (<c>SessionStreams.OnNewer: reject</c>): another replica's
    /// owner record means a stream active there, and the claim returns <c>busy</c> without changing anything;
    /// unless that owner is still in its debounce window (the held record equals the owner record), which
    /// is replaced like any claim replaces an owner. An owner record of the claiming replica is its own (this
    /// replica's registry has decided already). ARGV[6] <c>1</c> marks the new owner as held.
    /// KEYS: epoch, owner, held. ARGV: as <see cref="Claim"/>, then held (<c>1</c> or <c>0</c>).
    /// Returns <c>busy</c>, or as <see cref="Claim"/>.
    /// </summary>
    public const string ClaimIfIdle = """
        local current = redis.call('GET', KEYS[2])
        if current and string.sub(current, 1, string.len(ARGV[1]) + 1) ~= ARGV[1] .. ':' and redis.call('GET', KEYS[3]) ~= current then
          return { 'busy', '' }
        end

        """ + ClaimBody + """
        if ARGV[6] == '1' then
          redis.call('SET', KEYS[3], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])
        else
          redis.call('DEL', KEYS[3])
        end
        return { epoch, previous or '' }
        """;

    /// <summary>
    /// Ends a held owner's debounce window: while the owner record is still this lease's (or gone), the held
    /// record is removed, so claim-if-idle finds the key busy from now on. Atomic against
    /// <see cref="ClaimIfIdle"/>: a newer claim either took the key first (0) or finds it busy.
    /// KEYS: owner, held. ARGV: owner value. Returns 1 when the lease may go upstream, else 0.
    /// </summary>
    public const string LeaveWindow = """
        local current = redis.call('GET', KEYS[1])
        if current and current ~= ARGV[1] then
          return 0
        end
        redis.call('DEL', KEYS[2])
        return 1
        """;

    private const string ClaimBody = """
        local madeAt = tonumber(ARGV[5])
        if madeAt > 0 then
          local owner = redis.call('GET', KEYS[2])
          local held = owner and tonumber(string.match(owner, ':(%d+)$'))
          local ours = owner and string.sub(owner, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ':'
          if held and held >= madeAt and not ours then
            return { string.format('-%.0f', held), '' }
          end
        end
        local floor = tonumber(ARGV[4])
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
        local previous = redis.call('GET', KEYS[2])
        redis.call('SET', KEYS[2], ARGV[1] .. ':' .. epoch, 'PX', ARGV[2])

        """;

    /// <summary>
    /// Keeps a live stream's owner record: extends it while it is still this stream's, writes it again if
    /// it is gone (expired during an outage, or Redis restarted empty) unless the key's counter shows a newer
    /// claim since (one that ended already, whose message found no record to follow), and otherwise leaves the
    /// newer owner alone. KEYS: owner, epoch. ARGV: owner value, TTL ms, this stream's epoch.
    /// Returns the owner value now in force, or <c>-:counter</c> when a newer claim came and went.
    /// </summary>
    public const string Refresh = """
        local v = redis.call('GET', KEYS[1])
        if v == ARGV[1] then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
          return v
        end
        if not v then
          local counter = tonumber(redis.call('GET', KEYS[2]))
          if counter and counter > tonumber(ARGV[3]) then
            return string.format('-:%.0f', counter)
          end
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
