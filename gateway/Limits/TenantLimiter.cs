using System.Threading.RateLimiting;

namespace Gateway.Limits;

/// <summary>
/// Each tenant's token bucket and stream slots, shared by the tenant's partition of the <c>per-tenant</c>
/// policy (the bucket) and by <see cref="StreamLimits"/> (the slots). A tenant's state lives exactly as
/// long as one of them holds it: the ASP.NET rate limiter creates the partition and drops it once idle
/// (it looks every 100 ms), a request holds it while it has a slot; the bucket refills from the clock, so
/// there is no timer per tenant, and a flood of credentials costs bounded memory.
/// </summary>
internal sealed class TenantLimits(Microsoft.Extensions.Options.IOptions<RateLimitOptions> options, TimeProvider time)
{
    public static readonly MetadataName<string> Limit = new("llm_gateway.limit");

    private readonly RateLimitOptions _options = options.Value;
    private readonly Dictionary<string, TenantState> _tenants = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    /// <summary>Tenants with state, for tests and diagnostics.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _tenants.Count;
            }
        }
    }

    /// <summary>The tenant's state, created on first use; pair each call with <see cref="Release"/>.</summary>
    public TenantState Acquire(string tenant)
    {
        lock (_gate)
        {
            if (!_tenants.TryGetValue(tenant, out var state))
            {
                state = new TenantState(_options, time);
                _tenants[tenant] = state;
            }

            state.References++;
            return state;
        }
    }

    public void Release(string tenant, TenantState state)
    {
        lock (_gate)
        {
            if (--state.References == 0)
            {
                _tenants.Remove(tenant);
            }
        }
    }
}

/// <summary>One tenant's request bucket and stream slots.</summary>
internal sealed class TenantState(RateLimitOptions o, TimeProvider time)
{
    public TenantBucket Rate { get; } = new(o, time);

    public TenantSlots Slots { get; } = new(o.MaxConcurrentStreams);

    /// <summary>Holders of this state; guarded by <see cref="TenantLimits"/>' lock.</summary>
    public int References { get; set; }
}

/// <summary>
/// A tenant's request bucket: <see cref="RateLimitOptions.TokenLimit"/> requests at once, refilled
/// continuously at <see cref="RateLimitOptions.TokensPerPeriod"/> per
/// <see cref="RateLimitOptions.ReplenishmentPeriod"/>, worked out from the clock when asked, so it needs
/// no timer and no heartbeat. Not <see cref="TokenBucketRateLimiter"/> in manual mode: that one does not
/// move its clock on while it is full, so a bucket that sat full refills completely at the first
/// <c>TryReplenish</c> after it is emptied, which let a tenant spend twice its burst within 100 ms.
/// </summary>
internal sealed class TenantBucket
{
    private readonly Lock _gate = new();
    private readonly TimeProvider _time;
    private readonly int _limit;
    private readonly double _perTimestampTick;
    private double _tokens;
    private long _at;

    public TenantBucket(RateLimitOptions o, TimeProvider time)
    {
        _time = time;
        _limit = o.TokenLimit;
        _perTimestampTick = o.TokensPerPeriod / (o.ReplenishmentPeriod.TotalSeconds * time.TimestampFrequency);
        _tokens = o.TokenLimit;
        _at = time.GetTimestamp();
    }

    /// <summary>Takes <paramref name="count"/> requests' worth, or says how long until there is that much.</summary>
    public bool TryTake(int count, out TimeSpan retryAfter)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _limit);
        lock (_gate)
        {
            Refill();
            if (_tokens >= count)
            {
                _tokens -= count;
                retryAfter = TimeSpan.Zero;
                return true;
            }

            retryAfter = TimeSpan.FromSeconds((count - _tokens) / _perTimestampTick / _time.TimestampFrequency);
            return false;
        }
    }

    /// <summary>True once the bucket is full again: forgetting it then loses nothing.</summary>
    public bool IsFull
    {
        get
        {
            lock (_gate)
            {
                Refill();
                return _tokens >= _limit;
            }
        }
    }

    private void Refill()
    {
        var now = _time.GetTimestamp();
        _tokens = Math.Min(_limit, _tokens + ((now - _at) * _perTimestampTick));
        _at = now;
    }
}

/// <summary>
/// A tenant's partition of the <c>per-tenant</c> policy: a request from the tenant's bucket. The ASP.NET
/// rate limiter creates it and disposes it once idle; it is never idle while the bucket is refilling, so
/// no state is forgotten that the limit still depends on. Stream slots are taken after it, by
/// <see cref="StreamLimits"/>, which knows the request's session key.
/// </summary>
internal sealed class TenantLimiter : RateLimiter
{
    private static readonly RateLimitLease Granted = new Decision(acquired: true, retryAfter: null);

    private readonly string _tenant;
    private readonly TenantLimits _limits;
    private readonly TenantState _state;
    private long _lastUsed = Environment.TickCount64;
    private int _disposed;

    public TenantLimiter(string tenant, TenantLimits limits)
    {
        _tenant = tenant;
        _limits = limits;
        _state = limits.Acquire(tenant);
    }

    public override TimeSpan? IdleDuration =>
        _state.Rate.IsFull ? TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastUsed)) : null;

    public override RateLimiterStatistics? GetStatistics() => null;

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        Volatile.Write(ref _lastUsed, Environment.TickCount64);
        return _state.Rate.TryTake(permitCount, out var retryAfter) ? Granted : new Decision(acquired: false, retryAfter);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _limits.Release(_tenant, _state);
        }

        base.Dispose(disposing);
    }

    protected override ValueTask DisposeAsyncCore()
    {
        Dispose(true);
        return ValueTask.CompletedTask;
    }

    protected override ValueTask<RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
        new(AttemptAcquireCore(permitCount)); // no queueing: a request waiting for the bucket is worse than a clear 429

    /// <summary>A lease that holds nothing: a grant, or a refusal that says when to retry.</summary>
    private sealed class Decision(bool acquired, TimeSpan? retryAfter) : RateLimitLease
    {
        public override bool IsAcquired => acquired;

        public override IEnumerable<string> MetadataNames
        {
            get
            {
                if (!acquired)
                {
                    yield return TenantLimits.Limit.Name;
                    yield return MetadataName.RetryAfter.Name;
                }
            }
        }

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = acquired ? null
                : metadataName == TenantLimits.Limit.Name ? LimitRejections.Rate
                : metadataName == MetadataName.RetryAfter.Name ? retryAfter
                : null;
            return metadata is not null;
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
