using System.Threading.RateLimiting;
using Gateway.Limits;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Limits;

/// <summary>A tenant's bucket and slots live exactly as long as something holds them; the bucket refills
/// from the clock; a superseding request takes over its key's slot.</summary>
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
    public void TenantsHaveABucketEach_ALimiterMadeAgainForATenantSharesItsBucket()
    {
        var limits = Limits(tokens: 2, concurrent: 1);
        using var first = new TenantLimiter("alice", limits);
        using var again = new TenantLimiter("alice", limits); // the partition dropped and made again while in use
        using var other = new TenantLimiter("bob", limits);

        Assert.True(first.AttemptAcquire().IsAcquired);
        Assert.True(again.AttemptAcquire().IsAcquired);
        Assert.Equal("rate", Refused(first.AttemptAcquire()));  // two tokens spent across both
        Assert.True(other.AttemptAcquire().IsAcquired);          // another tenant has a bucket of its own
        Assert.Equal(2, limits.Count);
    }

    [Fact]
    public void Partition_IsNotIdle_WhileItsBucketRefills_SoTheLimiterCannotDropIt()
    {
        var limits = Limits(tokens: 2, concurrent: 1);
        using var limiter = new TenantLimiter("carol", limits);
        Assert.NotNull(limiter.IdleDuration); // full bucket: may be dropped

        Assert.True(limiter.AttemptAcquire().IsAcquired);
        Assert.Null(limiter.IdleDuration); // a token is owed to the bucket
    }

    [Fact]
    public void Slots_ASupersedingRequestTakesOverItsKeysSlot_TheReplacedOneGivesNothingBack()
    {
        var slots = new TenantSlots(limit: 2);
        Assert.True(slots.TryTake("a"));
        Assert.True(slots.TryTake("b"));
        Assert.False(slots.TryTake("c"));  // at the limit: a new conversation is refused
        Assert.False(slots.TryTake(null)); // and so is a stream without a key

        Assert.True(slots.TryTake("a"));   // typing again in a: a's slot, handed over
        slots.Return("a");                 // the replaced stream of a ends: a's slot stays with the newer one
        Assert.Equal(2, slots.InUse);
        Assert.False(slots.TryTake("c"));

        slots.Return("a");                 // a's last request ends: its slot comes back
        Assert.Equal(1, slots.InUse);
        Assert.True(slots.TryTake(null));
        Assert.False(slots.TryTake("c"));
        slots.Return(null);
        slots.Return("b");
        Assert.Equal(0, slots.InUse);
    }

    [Fact]
    public void BucketRefillsAtItsRate_SaysWhenToRetry_AndIsIdleOnceFull()
    {
        var clock = new ManualClock();
        var limits = Limits(tokens: 2, concurrent: 10, clock, perPeriod: 1, period: TimeSpan.FromSeconds(1));
        using var limiter = new TenantLimiter("erin", limits);

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
        var limits = Limits(tokens: 3, concurrent: 10, clock, perPeriod: 1, period: TimeSpan.FromMinutes(1));
        using var limiter = new TenantLimiter("frank", limits);
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

    /// <summary>A clock the test moves by hand.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1_000_000;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public void State_LivesAsLongAsItsLastHolder()
    {
        var limits = Limits(tokens: 5, concurrent: 5);
        var limiter = new TenantLimiter("dave", limits);
        var slotHolder = limits.Acquire("dave"); // a request with a slot
        using (var lease = limiter.AttemptAcquire())
        {
            Assert.True(lease.IsAcquired);
        }

        limiter.Dispose();
        limiter.Dispose(); // twice: released once
        Assert.Equal(1, limits.Count);
        Assert.Same(slotHolder, limits.Acquire("dave"));
        limits.Release("dave", slotHolder);
        limits.Release("dave", slotHolder);
        Assert.Equal(0, limits.Count);

        // A holder after all were gone starts a fresh state.
        using var again = new TenantLimiter("dave", limits);
        Assert.Equal(1, limits.Count);
    }
}
