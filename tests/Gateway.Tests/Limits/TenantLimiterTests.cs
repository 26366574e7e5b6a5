using System.Threading.RateLimiting;
using Gateway.Limits;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Limits;

/// <summary>A tenant's two partitions (superseding or not) share one bucket and one concurrency count,
/// which live exactly as long as one of the partitions does; the bucket refills from the clock.</summary>
public sealed class TenantLimiterTests
{
    private static TenantLimits Limits(int tokens, int concurrent, TimeProvider? clock = null, int perPeriod = 1, TimeSpan? period = null) =>
        new(Options.Create(new RateLimitOptions
        {
            TokenLimit = tokens,
            TokensPerPeriod = perPeriod,
            ReplenishmentPeriod = period ?? TimeSpan.FromHours(1),
            MaxConcurrentStreams = concurrent,
        }), clock ?? TimeProvider.System);

    private static TimeSpan? RetryAfter(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : null;

    private static string? Refused(RateLimitLease lease) =>
        lease.IsAcquired ? null : lease.TryGetMetadata(TenantLimits.Limit, out var which) ? which : "?";

    [Fact]
    public void BothPartitionsOfATenant_ShareItsBucket_AndOnlyTheNonSupersedingOneTakesASlot()
    {
        using var limits = Limits(tokens: 3, concurrent: 1);
        using var plain = new TenantLimiter("alice", superseding: false, limits);
        using var superseding = new TenantLimiter("alice", superseding: true, limits);
        using var other = new TenantLimiter("bob", superseding: false, limits);

        using var first = plain.AttemptAcquire();
        using var second = plain.AttemptAcquire();
        using var replacing = superseding.AttemptAcquire();
        using var third = superseding.AttemptAcquire();
        using var bobs = other.AttemptAcquire();

        Assert.True(first.IsAcquired);
        Assert.Equal("concurrency", Refused(second)); // alice's one slot is held
        Assert.True(replacing.IsAcquired);             // superseding her own stream needs no slot
        Assert.Equal("rate", Refused(third));          // three tokens spent across both partitions
        Assert.True(bobs.IsAcquired);                  // another tenant has a bucket and a slot of its own
        Assert.Equal(2, limits.Count);
    }

    [Fact]
    public void Partition_IsNotIdle_WhileItsSlotIsHeldOrItsBucketRefills_SoTheLimiterCannotDropIt()
    {
        using var limits = Limits(tokens: 2, concurrent: 1);
        using var limiter = new TenantLimiter("carol", superseding: false, limits);
        Assert.NotNull(limiter.IdleDuration); // full bucket, no slot held: may be dropped

        var lease = limiter.AttemptAcquire();
        Assert.True(lease.IsAcquired);
        Assert.Null(limiter.IdleDuration);

        lease.Dispose();
        Assert.Null(limiter.IdleDuration); // slot back, but a token is still owed to the bucket
    }

    [Fact]
    public void BucketRefillsAtItsRate_SaysWhenToRetry_AndIsIdleOnceFull()
    {
        var clock = new ManualClock();
        using var limits = Limits(tokens: 2, concurrent: 10, clock, perPeriod: 1, period: TimeSpan.FromSeconds(1));
        using var limiter = new TenantLimiter("erin", superseding: true, limits);

        Assert.True(limiter.AttemptAcquire().IsAcquired);
        Assert.True(limiter.AttemptAcquire().IsAcquired);
        var refused = limiter.AttemptAcquire();
        Assert.Equal("rate", Refused(refused));
        Assert.Equal(TimeSpan.FromSeconds(1), RetryAfter(refused));

        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.Equal(TimeSpan.FromMilliseconds(500), RetryAfter(limiter.AttemptAcquire()));
        clock.Advance(TimeSpan.FromMilliseconds(500));
        Assert.True(limiter.AttemptAcquire().IsAcquired); // one token back after one period
        Assert.Equal("rate", Refused(limiter.AttemptAcquire()));
        Assert.Null(limiter.IdleDuration);

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.NotNull(limiter.IdleDuration); // full again: nothing to forget
    }

    [Fact]
    public void BucketThatSatFull_IsEmptied_DoesNotRefillAtOnce()
    {
        // System.Threading.RateLimiting's TokenBucketRateLimiter in manual mode keeps the time of its last
        // refill while it is full, so after an idle hour its next TryReplenish gave back the whole burst:
        // twice the burst within one 100 ms heartbeat. The tenant's bucket must not.
        var clock = new ManualClock();
        using var limits = Limits(tokens: 3, concurrent: 10, clock, perPeriod: 1, period: TimeSpan.FromMinutes(1));
        using var limiter = new TenantLimiter("frank", superseding: true, limits);
        clock.Advance(TimeSpan.FromHours(1));

        for (var i = 0; i < 3; i++)
        {
            Assert.True(limiter.AttemptAcquire().IsAcquired);
        }

        clock.Advance(TimeSpan.FromMilliseconds(100));
        var refused = limiter.AttemptAcquire();
        Assert.Equal("rate", Refused(refused));
        Assert.True(RetryAfter(refused) > TimeSpan.FromSeconds(59), $"retry after {RetryAfter(refused)}");
    }

    [Fact]
    public void SlotRefused_SaysConcurrency_WithoutRetryAfter_AndTheSlotComesBackOnDispose()
    {
        using var limits = Limits(tokens: 10, concurrent: 1);
        using var limiter = new TenantLimiter("gina", superseding: false, limits);
        var held = limiter.AttemptAcquire();
        var refused = limiter.AttemptAcquire();
        Assert.Equal("concurrency", Refused(refused));
        Assert.Null(RetryAfter(refused));

        held.Dispose();
        using var again = limiter.AttemptAcquire();
        Assert.True(again.IsAcquired);
    }

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public void State_LivesAsLongAsEitherPartition()
    {
        var limits = Limits(tokens: 5, concurrent: 5);
        var plain = new TenantLimiter("dave", superseding: false, limits);
        var superseding = new TenantLimiter("dave", superseding: true, limits);
        using (var lease = plain.AttemptAcquire())
        {
            Assert.True(lease.IsAcquired);
        }

        plain.Dispose();
        plain.Dispose(); // twice: released once
        Assert.Equal(1, limits.Count);
        using (var lease = superseding.AttemptAcquire())
        {
            Assert.True(lease.IsAcquired);
        }

        superseding.Dispose();
        Assert.Equal(0, limits.Count);

        // A new partition after both were dropped starts a fresh state.
        using var again = new TenantLimiter("dave", superseding: false, limits);
        Assert.Equal(1, limits.Count);
        limits.Dispose();
    }
}
