using Gateway.Savings;

namespace Gateway.Tests.Savings;

/// <summary>The per-session totals are bounded however many distinct keys arrive, and forget the
/// least recently updated sessions first.</summary>
public sealed class SessionSavingsTests
{
    [Fact]
    public void DistinctKeyFlood_StaysBounded_KeepsRecentAndHotSessions()
    {
        var savings = new SessionSavings();
        for (var i = 0; i < SessionSavings.MaxSessions * 3; i++)
        {
            savings.Add($"t:flood-{i}", 1);
            if (i % 100 == 0)
            {
                savings.Add("t:hot", 2); // updated all along: never among the least recent
            }
        }

        Assert.InRange(savings.Count, 1, SessionSavings.MaxSessions + 1);
        Assert.Equal(new SessionTotals(1, 1), savings.Get($"t:flood-{(SessionSavings.MaxSessions * 3) - 1}"));
        Assert.Equal(default, savings.Get("t:flood-0"));
        var hot = savings.Get("t:hot");
        Assert.Equal(SessionSavings.MaxSessions * 3 / 100, hot.Cancellations);
        Assert.Equal(2 * hot.Cancellations, hot.TokensSaved);
    }

    [Fact]
    public async Task ConcurrentAdds_FromManyThreads_StayBounded_AndCountEveryUpdateOfAKeptSession()
    {
        var savings = new SessionSavings();
        const int PerThread = 6_000;
        var threads = Enumerable.Range(0, 8).Select(t => Task.Run(() =>
        {
            for (var i = 0; i < PerThread; i++)
            {
                savings.Add($"t:{t}-{i}", 3);
                if (i % 10 == 0)
                {
                    savings.Add("t:hot", 1); // a live conversation amid a flood of one-off keys
                }
            }
        })).ToArray();
        await Task.WhenAll(threads);

        Assert.InRange(savings.Count, 1, SessionSavings.MaxSessions + 9); // each writer may add one past the bound before a trim
        Assert.Equal(new SessionTotals(8 * PerThread / 10, 8 * PerThread / 10), savings.Get("t:hot"));
    }
}
