using System.Threading.RateLimiting;

namespace Gateway.Limits;

/// <summary>
/// Each tenant's token bucket and concurrency count, shared by that tenant's partitions of the
/// <c>per-tenant</c> policy (one for requests that supersede its own stream, one for the rest). A
/// tenant's state lives exactly as long as one of its partitions does: the ASP.NET rate limiter
/// creates the partitions, replenishes them on its 100 ms heartbeat and drops them when idle, so
/// there is one pass per tenant on that heartbeat, no timer per tenant, and a flood of credentials
/// costs bounded memory.
/// </summary>
internal sealed class TenantLimits(Microsoft.Extensions.Options.IOptions<RateLimitOptions> options) : IDisposable
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

    /// <summary>The tenant's state, created on first use; pair each call with <see cref="Release"/>.
    /// Called when a partition is made or dropped, not per request.</summary>
    public TenantState Acquire(string tenant)
    {
        lock (_gate)
        {
            if (!_tenants.TryGetValue(tenant, out var state))
            {
                state = new TenantState(_options);
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
            if (--state.References > 0)
            {
                return;
            }

            _tenants.Remove(tenant);
        }

        state.Dispose();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var state in _tenants.Values)
            {
                state.Dispose();
            }

            _tenants.Clear();
        }
    }
}

/// <summary>One tenant's bucket (replenished by its partitions' heartbeat) and concurrency count.</summary>
internal sealed class TenantState(RateLimitOptions o) : IDisposable
{
    public TokenBucketRateLimiter Rate { get; } = new(new TokenBucketRateLimiterOptions
    {
        TokenLimit = o.TokenLimit,
        TokensPerPeriod = o.TokensPerPeriod,
        ReplenishmentPeriod = o.ReplenishmentPeriod,
        QueueLimit = 0,
        AutoReplenishment = false, // the partition's heartbeat calls TryReplenish
    });

    public ConcurrencyLimiter Concurrency { get; } = new(new ConcurrencyLimiterOptions { PermitLimit = o.MaxConcurrentStreams, QueueLimit = 0 });

    /// <summary>Partitions holding this state; guarded by <see cref="TenantLimits"/>' lock.</summary>
    public int References { get; set; }

    public void Dispose()
    {
        Rate.Dispose();
        Concurrency.Dispose();
    }
}

/// <summary>
/// One of a tenant's two partitions of the <c>per-tenant</c> policy: a permit from the tenant's token
/// bucket and, unless the request supersedes the tenant's own active stream, a slot from its
/// concurrency count. The ASP.NET rate limiter creates it, replenishes it every 100 ms and disposes
/// it once idle; it is never idle while the tenant's bucket is refilling or a slot is held, so no
/// state is forgotten that a limit still depends on.
/// </summary>
internal sealed class TenantLimiter : ReplenishingRateLimiter
{
    private readonly string _tenant;
    private readonly bool _superseding;
    private readonly TenantLimits _limits;
    private readonly TenantState _state;
    private long _lastUsed = Environment.TickCount64;
    private int _disposed;

    public TenantLimiter(string tenant, bool superseding, TenantLimits limits)
    {
        _tenant = tenant;
        _superseding = superseding;
        _limits = limits;
        _state = limits.Acquire(tenant);
    }

    public override TimeSpan? IdleDuration =>
        _state.Rate.IdleDuration is null || _state.Concurrency.IdleDuration is null
            ? null
            : TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastUsed));

    public override bool IsAutoReplenishing => false;

    public override TimeSpan ReplenishmentPeriod => _state.Rate.ReplenishmentPeriod;

    public override bool TryReplenish() => _state.Rate.TryReplenish();

    public override RateLimiterStatistics? GetStatistics() => null;

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        Volatile.Write(ref _lastUsed, Environment.TickCount64);
        var rate = _state.Rate.AttemptAcquire(permitCount);
        if (!rate.IsAcquired)
        {
            return new LabelledLease(rate, "rate");
        }

        if (_superseding)
        {
            return rate;
        }

        var slot = _state.Concurrency.AttemptAcquire(permitCount);
        if (!slot.IsAcquired)
        {
            rate.Dispose();
            return new LabelledLease(slot, "concurrency");
        }

        return new BothLease(rate, slot);
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
        new(AttemptAcquireCore(permitCount)); // no queueing: a stream waiting for a slot is worse than a clear 429

    /// <summary>A rejection that says which limit refused it.</summary>
    private sealed class LabelledLease(RateLimitLease inner, string limit) : RateLimitLease
    {
        public override bool IsAcquired => inner.IsAcquired;

        public override IEnumerable<string> MetadataNames => [.. inner.MetadataNames, TenantLimits.Limit.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            if (metadataName == TenantLimits.Limit.Name)
            {
                metadata = limit;
                return true;
            }

            return inner.TryGetMetadata(metadataName, out metadata);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
        }
    }

    private sealed class BothLease(RateLimitLease rate, RateLimitLease slot) : RateLimitLease
    {
        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                slot.Dispose();
                rate.Dispose();
            }
        }
    }
}
