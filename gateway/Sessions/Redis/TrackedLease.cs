using System.Globalization;

namespace Gateway.Sessions.Redis;

/// <summary>A local lease and what Redis said about it: epoch -1 while the claim is on its way,
/// 0 when it was made without Redis (until Redis answers again and it is reconciled).</summary>
internal sealed class TrackedLease(Lease lease, string hash, long madeAt)
{
    private long _epoch = -1;
    private long _seen;

    public Lease Lease { get; } = lease;

    public string Hash { get; } = hash;

    /// <summary>When the lease was made, in microseconds since 1970 (this replica's clock).</summary>
    public long MadeAt { get; } = madeAt;

    /// <summary>The highest epoch another replica announced for the key.</summary>
    public long Seen => Interlocked.Read(ref _seen);

    public void Saw(long epoch) => RaiseTo(ref _seen, epoch);

    public Task Claimed { get; set; } = Task.CompletedTask;

    /// <summary>Claimed with <see cref="RedisScripts.ClaimIfIdle"/> (a reject route).</summary>
    public bool IfIdle { get; init; }

    /// <summary>Claimed as waiting in a debounce window, marked so in Redis until it leaves it.</summary>
    public bool Held { get; init; }

    /// <summary>Set by the claim-if-idle: another replica's stream is active, and this claim changed nothing.</summary>
    public bool Busy { get; set; }

    public long Epoch => Interlocked.Read(ref _epoch);

    public void SetEpoch(long epoch) => RaiseTo(ref _epoch, epoch);

    public void SetLocalOnly() => Interlocked.CompareExchange(ref _epoch, 0, -1);

    public string OwnerValue(string replica) => $"{replica}:{Epoch.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Sets <paramref name="field"/> to <paramref name="value"/> if that raises it; epochs only rise.</summary>
    private static void RaiseTo(ref long field, long value)
    {
        var current = Interlocked.Read(ref field);
        while (value > current)
        {
            var was = Interlocked.CompareExchange(ref field, value, current);
            if (was == current)
            {
                return;
            }

            current = was;
        }
    }
}
