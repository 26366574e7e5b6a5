using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Tests.Infrastructure;
using StackExchange.Redis;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>
/// Two replicas must never keep two live streams for one session for longer than it takes Redis to
/// answer again: claims a replica made while it thought Redis away are reconciled when it comes back (the
/// newest claim wins), and epochs keep rising across a Redis that lost or lags behind its counters.
/// </summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class SplitBrainTests
{
    private const int UnavailableEventId = Gateway.Telemetry.EventIds.RedisUnavailable;

    /// <summary>Makes <paramref name="replica"/> see one Redis call slower than its timeout, so it marks
    /// Redis unavailable, while the other replica, which calls nothing meanwhile, goes on as before.
    /// Redis is left frozen; the caller resumes it.</summary>
    private static async Task OneSlowCallAsync(Replicas replicas, Replica replica, string sessionId)
    {
        await replicas.Redis.PauseAsync();
        var served = await StreamReading.SendAndReadAsync(replica.Client, CrossReplicaTests.Short(sessionId));
        Assert.Equal("[DONE]", served.DataEvents[^1]);
        await replica.WaitAvailableAsync(false);
    }

    [Fact]
    public async Task ASawOneSlowCall_ItsLocalClaimIsReconciledWhenRedisAnswers_OlderStreamOnBSuperseded_NewerOnAGoesOn()
    {
        await using var replicas = await Replicas.StartAsync();
        using var older = await StreamReading.SendAsync(replicas.B.Client, CrossReplicaTests.Long("split"));
        await replicas.WaitForEntryAsync("split", e => e.TokensSent >= 2);

        // A thinks Redis is away: its claim for the session is local (never announced), so B's stream goes on.
        await OneSlowCallAsync(replicas, replicas.A, "slow-one");
        using var newer = await StreamReading.SendAsync(replicas.A.Client, CrossReplicaTests.Long("split"));
        Assert.Equal(200, (int)newer.StatusCode);
        await replicas.WaitForEntryAsync("split", e => e.TokensSent >= 1, index: 1);
        Assert.True(replicas.B.Redis.Available);

        // Redis answers again: A claims its local lease in Redis, and the newer claim wins.
        replicas.Redis.Resume();
        await replicas.A.WaitAvailableAsync();
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        var olderTranscript = await StreamReading.ReadToEndAsync(older, deadline.Token);

        Assert.True(olderTranscript.EndedCleanly);
        Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(olderTranscript));
        Assert.True((await replicas.WaitForEntryAsync("split", e => e.EndedAt is not null)).Cancelled);
        var newerEntry = replicas.Mock.Ledger.Snapshot().Where(e => e.SessionId == "split").ElementAt(1);
        Assert.Null(newerEntry.EndedAt); // the newer stream was not touched
        Assert.Equal(1, replicas.A.Logs.WarningCount(UnavailableEventId));
    }

    [Fact]
    public async Task BothClaimedWhileRedisWasAway_TheNewerClaimWins_WhicheverReplicaComesBackFirst()
    {
        await using var replicas = await Replicas.StartAsync();
        await OneSlowCallAsync(replicas, replicas.A, "slow-two");
        using var older = await StreamReading.SendAsync(replicas.A.Client, CrossReplicaTests.Long("both"));
        await replicas.WaitForEntryAsync("both", e => e.TokensSent >= 1);

        // B's claim, newer, waits on the frozen Redis until its timeout, then streams locally.
        using var newer = await StreamReading.SendAsync(replicas.B.Client, CrossReplicaTests.Long("both"));
        Assert.Equal(200, (int)newer.StatusCode);
        await replicas.WaitForEntryAsync("both", e => e.TokensSent >= 1, index: 1);

        replicas.Redis.Resume();
        await replicas.A.WaitAvailableAsync();
        await replicas.B.WaitAvailableAsync();
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        var olderTranscript = await StreamReading.ReadToEndAsync(older, deadline.Token);

        Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(olderTranscript));
        Assert.True((await replicas.WaitForEntryAsync("both", e => e.EndedAt is not null)).Cancelled);
        Assert.Null(replicas.Mock.Ledger.Snapshot().Where(e => e.SessionId == "both").ElementAt(1).EndedAt);
    }

    [Fact]
    public async Task RedisRestartedEmpty_ThenItsCountersLagBehind_ANewerClaimStillSupersedes()
    {
        await using var replicas = await Replicas.StartAsync();
        using var first = await StreamReading.SendAsync(replicas.A.Client, CrossReplicaTests.Long("restart-plain"));
        using var second = await StreamReading.SendAsync(replicas.A.Client, CrossReplicaTests.Long("restart-lagging"));
        await replicas.WaitForEntryAsync("restart-plain", e => e.TokensSent >= 1);
        await replicas.WaitForEntryAsync("restart-lagging", e => e.TokensSent >= 1);

        // A new redis-server process on the same port, with nothing in it.
        await replicas.Redis.KillAsync();
        await replicas.A.WaitAvailableAsync(false);
        await replicas.Redis.RestartAsync();
        await replicas.A.WaitAvailableAsync();
        await replicas.B.WaitAvailableAsync();

        // Empty: the counter starts afresh.
        var fresh = await StreamReading.SendAndReadAsync(replicas.B.Client, CrossReplicaTests.Short("restart-plain"));
        Assert.Equal("[DONE]", fresh.DataEvents[^1]);
        using (var deadline = new CancellationTokenSource(Wait.Timeout))
        {
            Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(first, deadline.Token)));
        }

        // Lagging: what a failover replica that missed the last INCRs holds, a counter below the epoch
        // the running stream was given.
        await using (var redis = await ConnectionMultiplexer.ConnectAsync(replicas.Redis.ConnectionString))
        {
            var hash = RedisSessionRegistry.Hash(SessionKey.Create("llm", null, "restart-lagging").Value);
            Assert.True(await redis.GetDatabase().StringSetAsync($"llmgw:{{{hash}}}:epoch", "1000"));
        }

        var newer = await StreamReading.SendAndReadAsync(replicas.B.Client, CrossReplicaTests.Short("restart-lagging"));
        Assert.Equal("[DONE]", newer.DataEvents[^1]);
        using (var deadline = new CancellationTokenSource(Wait.Timeout))
        {
            Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(second, deadline.Token)));
        }

        Assert.True((await replicas.WaitForEntryAsync("restart-lagging", e => e.EndedAt is not null)).Cancelled);
    }
}
