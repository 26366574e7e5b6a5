using System.Globalization;
using System.Runtime.InteropServices;
using Gateway.Redis;
using Gateway.Sessions;
using Gateway.Telemetry;
using Gateway.Tokens;
using Gateway.Utilities;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gateway.Limits;

/// <summary>Whether a tenant may start a request and, if not, how long until it may.</summary>
internal readonly record struct BudgetDecision(bool Admitted, TimeSpan RetryAfter);

/// <summary>
/// Each tenant's token budget (<see cref="RateLimitOptions.TokensPerMinute"/>, N): a bucket of N tokens
/// refilled continuously at N per minute, charged with the tokens a tenant's streams spend. Tokens are
/// known only once spent, so a charge may take the balance below zero (debt); a request is admitted while
/// its tenant has at least one token left, and the answer to one that is not says how long until it has.
/// <para>
/// Not a <see cref="System.Threading.RateLimiting.TokenBucketRateLimiter"/>: that one cannot go into debt
/// (a lease asks for its permits before it knows how many) and does not move its clock while full (see
/// <see cref="TenantBucket"/>). The balance is worked out from the clock when asked, so there is no timer
/// per tenant, and a tenant whose bucket is full again is forgotten.
/// </para>
/// <para>
/// With Redis (<c>Gateway:Sessions:Redis</c>) the balance lives in Redis and every replica charges and
/// reads the same one (key <c>{prefix}:budget:{hash of the tenant}</c>, gone once full again). This
/// replica's own balance is kept beside it and is the one that applies while Redis does not answer; a
/// request is admitted when both allow it, so debt run up during an outage still counts once Redis is back.
/// </para>
/// </summary>
internal sealed partial class TokenBudgets
{
    /// <summary>A keyed <see cref="TimeProvider"/> registered under this key is the budgets' clock (tests
    /// move it); otherwise the gateway's.</summary>
    public const string ClockKey = "token-budgets";

    /// <summary>How often a running stream's tokens are charged, so a long stream weighs on new requests
    /// before it ends. Read off the stream's counter: the stream itself does nothing for it.</summary>
    public static readonly TimeSpan ChargeInterval = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(1);

    /// <summary>The balance a request needs: one token, less a millionth, since a refill summed over several
    /// steps (17 s, then 1 s) may fall a rounding error short of the same refill in one step.</summary>
    private const double Enough = 1 - 1e-6;

    /// <summary>KEYS: budget. ARGV: now (ms since 1970), capacity, amount (negative gives back). Refills by
    /// the time since the last charge, takes the amount, and keeps the key only until it is full again.
    /// Returns the balance as a string (a Lua number would come back truncated to an integer).</summary>
    private const string ChargeScript = """
        local now = tonumber(ARGV[1])
        local cap = tonumber(ARGV[2])
        local amount = tonumber(ARGV[3])
        local v = redis.call('HMGET', KEYS[1], 'b', 't')
        local b = tonumber(v[1]) or cap
        local t = tonumber(v[2]) or now
        if now > t then
          b = math.min(cap, b + (now - t) * cap / 60000)
          t = now
        end
        if amount ~= 0 then
          b = math.min(cap, b - amount)
          if b >= cap then
            redis.call('DEL', KEYS[1])
          else
            redis.call('HSET', KEYS[1], 'b', string.format('%.17g', b), 't', string.format('%.0f', t))
            redis.call('PEXPIRE', KEYS[1], math.ceil((cap - b) * 60000 / cap) + 1000)
          end
        end
        return string.format('%.17g', b)
        """;

    private readonly Dictionary<string, Balance> _local = new(StringComparer.Ordinal);
    private readonly HashSet<Charge> _running = [];
    private readonly Lock _ticking = new();
    private readonly Dictionary<string, long> _tickSpent = new(StringComparer.Ordinal);
    private Charge[] _tickCharges = [];
    private ITimer? _ticker;
    private readonly Lock _gate = new();
    private readonly SharedRedis _redis;
    private readonly ILogger<TokenBudgets> _logger;
    private readonly double _capacity;
    private readonly double _perSecond;
    private readonly string _capacityArgument;
    private long _sweptAt;
    private int _redisFailing;

    public TokenBudgets(IOptions<RateLimitOptions> options, SharedRedis redis, TimeProvider time, ILogger<TokenBudgets> logger)
    {
        _redis = redis;
        _logger = logger;
        Time = time;
        Enabled = options.Value.TokensPerMinute is not null;
        _capacity = options.Value.TokensPerMinute ?? 0;
        _perSecond = _capacity / 60;
        _capacityArgument = _capacity.ToString(CultureInfo.InvariantCulture);
        _sweptAt = time.GetTimestamp();
    }

    public bool Enabled { get; }

    public TimeProvider Time { get; }

    /// <summary>Tenants this replica keeps a balance for (not yet full again), for tests and diagnostics.</summary>
    public int LocalCount
    {
        get
        {
            lock (_gate)
            {
                return _local.Count;
            }
        }
    }

    /// <summary>Whether <paramref name="tenant"/> may start a request now.</summary>
    public async ValueTask<BudgetDecision> CheckAsync(string tenant)
    {
        var balance = Local(tenant, 0);
        if (balance >= Enough && _redis.Database is { } db && await ChargeRedisAsync(db, tenant, 0) is { } shared)
        {
            balance = Math.Min(balance, shared);
        }

        return balance >= Enough
            ? new BudgetDecision(true, TimeSpan.Zero)
            : new BudgetDecision(false, TimeSpan.FromSeconds((Enough - balance) * 60 / _capacity));
    }

    /// <summary>Takes <paramref name="tokens"/> from the tenant's budget (a negative amount gives back);
    /// never throws: without Redis the charge is this replica's only.</summary>
    public async Task ChargeAsync(string tenant, long tokens)
    {
        if (tokens == 0)
        {
            return;
        }

        Local(tenant, tokens);
        if (_redis.Database is { } db)
        {
            await ChargeRedisAsync(db, tenant, tokens);
        }
    }

    /// <summary>Charges a request's stream while it runs (every <see cref="ChargeInterval"/>) and at its end.</summary>
    public Charge StartCharging(string tenant, StreamTokens tokens)
    {
        var charge = new Charge(this, tenant, tokens);
        lock (_running)
        {
            _running.Add(charge);
            _ticker ??= Time.CreateTimer(static state => ((TokenBudgets)state!).Tick(), this, ChargeInterval, ChargeInterval);
        }

        return charge;
    }

    /// <summary>One timer for every running stream, not one each: thousands of streams would otherwise wake a
    /// thread thousands of times a second. What each tenant's streams spent since the last tick is charged as
    /// one amount (one Redis call a tenant). The tick's buffers are kept from one tick to the next: with
    /// thousands of tenants a new copy and map each second were large-object-heap allocations, which bring
    /// full collections of a heap holding every stream's state. A tick that finds the last one still
    /// running is skipped: each charge keeps what its stream spent until a tick takes it.</summary>
    private void Tick()
    {
        if (!_ticking.TryEnter())
        {
            return;
        }

        try
        {
            int count;
            lock (_running)
            {
                count = _running.Count;
                if (count == 0)
                {
                    return;
                }

                if (_tickCharges.Length < count)
                {
                    _tickCharges = new Charge[Math.Max(count, _tickCharges.Length * 2)];
                }

                _running.CopyTo(_tickCharges);
            }

            foreach (var charge in _tickCharges.AsSpan(0, count))
            {
                if (charge.Take(final: false) is { } tokens)
                {
                    ref var spent = ref CollectionsMarshal.GetValueRefOrAddDefault(_tickSpent, charge.Tenant, out _);
                    spent += tokens;
                }
            }

            foreach (var (tenant, tokens) in _tickSpent)
            {
                _ = ChargeAsync(tenant, tokens); // never throws; no stream waits for it
            }

            _tickCharges.AsSpan(0, count).Clear(); // ended streams' charges are not kept alive until the next tick
            _tickSpent.Clear();
        }
        finally
        {
            _ticking.Exit();
        }
    }

    private double Local(string tenant, long spend)
    {
        lock (_gate)
        {
            var now = Time.GetTimestamp();
            SweepIfDue(now);
            if (!_local.TryGetValue(tenant, out var balance))
            {
                if (spend <= 0)
                {
                    return _capacity;
                }

                balance = new Balance { Tokens = _capacity, At = now };
                _local[tenant] = balance;
            }

            Refill(balance, now);
            balance.Tokens = Math.Min(_capacity, balance.Tokens - spend);
            return balance.Tokens;
        }
    }

    private void Refill(Balance balance, long now)
    {
        if (now > balance.At)
        {
            balance.Tokens = Math.Min(_capacity, balance.Tokens + (Time.GetElapsedTime(balance.At, now).TotalSeconds * _perSecond));
            balance.At = now;
        }
    }

    /// <summary>Forgets the tenants whose budget is full again: a flood of credentials costs bounded memory.</summary>
    private void SweepIfDue(long now)
    {
        if (Time.GetElapsedTime(_sweptAt, now) < SweepInterval)
        {
            return;
        }

        _sweptAt = now;
        foreach (var (tenant, balance) in _local)
        {
            Refill(balance, now);
            if (balance.Tokens >= _capacity)
            {
                _local.Remove(tenant);
            }
        }
    }

    /// <summary>The shared balance after charging <paramref name="tokens"/>, or null when Redis did not answer.</summary>
    private async Task<double?> ChargeRedisAsync(IDatabase db, string tenant, long tokens)
    {
        try
        {
            var result = await db.ScriptEvaluateAsync(ChargeScript, [new RedisKey(Key(tenant))],
            [
                Time.GetUtcNow().ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture),
                _capacityArgument,
                tokens.ToString(CultureInfo.InvariantCulture),
            ]);
            if (Interlocked.Exchange(ref _redisFailing, 0) == 1)
            {
                RedisAnswering(_logger);
            }

            return double.Parse((string)result!, NumberStyles.Float, CultureInfo.InvariantCulture);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException or FormatException or InvalidCastException)
        {
            if (Interlocked.Exchange(ref _redisFailing, 1) == 0)
            {
                RedisNotAnswering(_logger, ex.GetType().Name);
            }

            return null;
        }
    }

    /// <summary>The tenant is already a hash of its credential, or a client address; hashed again so no
    /// address is stored either.</summary>
    private string Key(string tenant) => $"{_redis.KeyPrefix}:budget:{Hashes.Sha256Hex(tenant, 16)}";

    [LoggerMessage(EventId = EventIds.BudgetRedisNotAnswering, Level = LogLevel.Warning,
        Message = "Token budgets: Redis did not answer ({Error}); each replica applies its own budget until it does")]
    private static partial void RedisNotAnswering(ILogger logger, string error);

    [LoggerMessage(EventId = EventIds.BudgetRedisAnswering, Level = LogLevel.Information, Message = "Token budgets: Redis answers again; budgets are shared across replicas")]
    private static partial void RedisAnswering(ILogger logger);

    private sealed class Balance
    {
        public double Tokens;
        public long At;
    }

    /// <summary>One request's charging: what its stream has spent, taken from the budget every
    /// <see cref="ChargeInterval"/> while it runs and all of it by <see cref="EndAsync"/>.</summary>
    internal sealed class Charge(TokenBudgets budgets, string tenant, StreamTokens tokens)
    {
        private readonly Lock _gate = new();
        private long _charged;
        private bool _ended;

        public string Tenant => tenant;

        /// <summary>The stream has ended: charges what is left (or gives back what a last count took away).</summary>
        public Task EndAsync()
        {
            lock (budgets._running)
            {
                budgets._running.Remove(this);
            }

            return Take(final: true) is { } left ? budgets.ChargeAsync(tenant, left) : Task.CompletedTask;
        }

        /// <summary>What the stream spent since the last take; null for nothing (or once it has ended).</summary>
        public long? Take(bool final)
        {
            var spent = tokens.Spent;
            lock (_gate)
            {
                if (_ended)
                {
                    return null;
                }

                _ended = final;
                var taken = spent - _charged;
                if (taken == 0 || (taken < 0 && !final))
                {
                    return null;
                }

                _charged = spent;
                return taken;
            }
        }
    }
}
