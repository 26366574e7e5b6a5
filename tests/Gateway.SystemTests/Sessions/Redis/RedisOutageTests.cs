using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>Redis lost mid-run, back again, or never there: the gateway keeps serving.</summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class RedisOutageTests
{
    private const int UnavailableEventId = Gateway.Telemetry.EventIds.RedisUnavailable;

    [Fact]
    public async Task RedisKilledThenRestarted_ReplicasServeLocally_GaugeAndOneWarning_ThenCrossReplicaAgain()
    {
        await using var replicas = await Replicas.StartAsync();
        Assert.Equal(1, await replicas.A.AvailabilityGaugeAsync());

        await replicas.Redis.KillAsync();
        await replicas.A.WaitAvailableAsync(false);
        await replicas.B.WaitAvailableAsync(false);

        // Both serve, and supersede on one replica still works, more than once during the outage.
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.A, "outage-a");
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.B, replicas.B, "outage-b");
        var served = await StreamReading.SendAndReadAsync(replicas.B.Client, CrossReplicaTests.Short("outage-c"));
        Assert.Equal("[DONE]", served.DataEvents[^1]);
        await replicas.A.WaitGaugeAsync(0);
        await replicas.B.WaitGaugeAsync(0);
        Assert.Equal(1, await replicas.A.Logs.WaitForWarningAsync(UnavailableEventId));
        Assert.Equal(1, await replicas.B.Logs.WaitForWarningAsync(UnavailableEventId));

        await replicas.Redis.RestartAsync();
        await replicas.A.WaitAvailableAsync();
        await replicas.B.WaitAvailableAsync();
        await replicas.A.WaitGaugeAsync(1);

        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.B, "after-restart");
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.B, replicas.A, "after-restart");
        Assert.Equal(1, replicas.A.Logs.WarningCount(UnavailableEventId));
    }

    [Fact]
    public async Task RedisFrozen_ClaimWaitsForItsOrder_UpstreamNotContactedUntilRedisAnswers_ThenNewerOnBSupersedes()
    {
        // A timeout longer than the freeze: the claim is ordered late, not given up.
        await using var replicas = await Replicas.StartAsync(redisTimeout: TimeSpan.FromSeconds(10));
        await replicas.Redis.PauseAsync();

        var oldResponse = StreamReading.SendAsync(replicas.A.Client, CrossReplicaTests.Long("frozen-order"));
        // The claim has no place in the deployment's order while Redis is frozen, so the request must not
        // reach the model server yet. An absence can only be checked for a while: a gateway that forwarded
        // before its claim was ordered shows the request here within milliseconds.
        var early = await Assert.ThrowsAsync<TimeoutException>(() => replicas.Mock.Ledger.WaitForAsync(
            all => all.Any(e => e.SessionId == "frozen-order"), TimeSpan.FromMilliseconds(500)));
        Assert.Contains("Ledger condition not met", early.Message, StringComparison.Ordinal);

        replicas.Redis.Resume();
        using var old = await oldResponse;
        Assert.Equal(200, (int)old.StatusCode);
        await replicas.WaitForEntryAsync("frozen-order", e => e.TokensSent >= 1);

        // Now that the stream has begun, a newer request on the other replica is ordered after it.
        var fresh = await StreamReading.SendAndReadAsync(replicas.B.Client, CrossReplicaTests.Short("frozen-order"));
        Assert.Equal(200, fresh.StatusCode);
        Assert.Equal("[DONE]", fresh.DataEvents[^1]);
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(old, deadline.Token)));
        Assert.True((await replicas.WaitForEntryAsync("frozen-order", e => e.EndedAt is not null)).Cancelled);
        Assert.True(replicas.A.Redis.Available); // ordered late is not an outage
        Assert.Equal(0, replicas.A.Logs.WarningCount(UnavailableEventId));
    }

    [Fact]
    public async Task RedisFrozen_ClaimGivesUpAfterTheTimeout_ServedLocally_OneWarning_ThenCrossReplicaAgain()
    {
        await using var replicas = await Replicas.StartAsync(); // RedisTimeout 250 ms, the default
        await replicas.Redis.PauseAsync();

        // A Redis that holds its connections open but answers nothing delays a claim by the timeout, no more.
        var served = await StreamReading.SendAndReadAsync(replicas.A.Client, CrossReplicaTests.Short("frozen"));
        Assert.Equal("[DONE]", served.DataEvents[^1]);
        await replicas.A.WaitAvailableAsync(false);
        Assert.Equal(1, await replicas.A.Logs.WaitForWarningAsync(UnavailableEventId));
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.A, "frozen-local");
        // (No gauge check here: B, which claimed nothing, may still read available, and in-process hosts
        // share one gauge series; the kill test above checks the gauge with both replicas down.)

        replicas.Redis.Resume();
        await replicas.A.WaitAvailableAsync();
        await replicas.B.WaitAvailableAsync();
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.B, "after-thaw");
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.B, replicas.A, "after-thaw");
        Assert.Equal(1, replicas.A.Logs.WarningCount(UnavailableEventId));
    }

    [Fact]
    public async Task RedisUnreachableAtStart_GatewayStartsAndServes_LocalSupersede_GaugeZero()
    {
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 20 });
        await using var replica = await Replica.StartAsync(mock.BaseAddress, $"127.0.0.1:{RedisServer.FreePort()}");

        var served = await StreamReading.SendAndReadAsync(replica.Client, CrossReplicaTests.Short("nobody-home"));
        Assert.Equal("[DONE]", served.DataEvents[^1]);

        await CrossReplicaTests.AssertSupersedesAsync(mock, replica, replica, "local-only");
        await replica.WaitGaugeAsync(0);
        Assert.False(replica.Redis.Available);
        Assert.Equal(1, await replica.Logs.WaitForWarningAsync(UnavailableEventId));
        var again = await StreamReading.SendAndReadAsync(replica.Client, CrossReplicaTests.Short("nobody-home"));
        Assert.Equal("[DONE]", again.DataEvents[^1]);
        Assert.Equal(1, replica.Logs.WarningCount(UnavailableEventId)); // once per outage, not per request or reconnect attempt
    }
}
