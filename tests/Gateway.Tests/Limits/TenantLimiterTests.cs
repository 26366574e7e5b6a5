using System.Threading.RateLimiting;
using Gateway.Limits;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Limits;

/// <summary>A tenant's two partitions (superseding or not) share one bucket and one concurrency count,
/// which live exactly as long as one of the partitions does.</summary>
public sealed class TenantLimiterTests
{
    private static TenantLimits Limits(int tokens, int concurrent) => new(Options.Create(new RateLimitOptions
    {
        TokenLimit = tokens,
        TokensPerPeriod = 1,
        ReplenishmentPeriod = TimeSpan.FromHours(1),
        MaxConcurrentStreams = concurrent,
    }));

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
        Assert.False(limiter.IsAutoReplenishing);
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
