using System.Threading.RateLimiting;

namespace Gateway.Limits;

/// <summary>
/// The tenants' buckets and concurrency counts, each a partitioned limiter of its own, so idle
/// tenants are cleaned up by the runtime and a flood of credentials costs bounded memory.
/// </summary>
internal sealed class TenantLimits : IDisposable
{
    public static readonly MetadataName<string> Limit = new("llm_gateway.limit");

    public TenantLimits(Microsoft.Extensions.Options.IOptions<RateLimitOptions> options)
    {
        var o = options.Value;
        Rate = PartitionedRateLimiter.Create<string, string>(tenant => RateLimitPartition.GetTokenBucketLimiter(tenant, _ =>
            new TokenBucketRateLimiterOptions
            {
                TokenLimit = o.TokenLimit,
                TokensPerPeriod = o.TokensPerPeriod,
                ReplenishmentPeriod = o.ReplenishmentPeriod,
                QueueLimit = 0,
                // The partitioned limiter's own 100 ms heartbeat replenishes every bucket; with true each
                // tenant's bucket would carry a timer of its own (memory and a callback per tenant per period).
                AutoReplenishment = false,
            }));
        Concurrency = PartitionedRateLimiter.Create<string, string>(tenant => RateLimitPartition.GetConcurrencyLimiter(tenant, _ =>
            new ConcurrencyLimiterOptions { PermitLimit = o.MaxConcurrentStreams, QueueLimit = 0 }));
    }

    public PartitionedRateLimiter<string> Rate { get; }

    public PartitionedRateLimiter<string> Concurrency { get; }

    public void Dispose()
    {
        Rate.Dispose();
        Concurrency.Dispose();
    }
}

/// <summary>
/// One request's view of its tenant's limits: a permit from the tenant's token bucket and, unless the
/// request supersedes the tenant's own active stream, a slot from its concurrency count. Holds no
/// state of its own; the ASP.NET rate limiter creates and drops these per partition.
/// </summary>
internal sealed class TenantLimiter(string tenant, bool superseding, TenantLimits limits) : RateLimiter
{
    private long _lastUsed = Environment.TickCount64;

    public override TimeSpan? IdleDuration => TimeSpan.FromMilliseconds(Environment.TickCount64 - Volatile.Read(ref _lastUsed));

    public override RateLimiterStatistics? GetStatistics() => null;

    protected override RateLimitLease AttemptAcquireCore(int permitCount)
    {
        Volatile.Write(ref _lastUsed, Environment.TickCount64);
        var rate = limits.Rate.AttemptAcquire(tenant, permitCount);
        if (!rate.IsAcquired)
        {
            return new LabelledLease(rate, "rate");
        }

        if (superseding)
        {
            return rate;
        }

        var slot = limits.Concurrency.AttemptAcquire(tenant, permitCount);
        if (!slot.IsAcquired)
        {
            rate.Dispose();
            return new LabelledLease(slot, "concurrency");
        }

        return new BothLease(rate, slot);
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
