using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Redis;

/// <summary>Redis lost mid-run, back again, or never there: the gateway keeps serving.</summary>
[Collection(RedisCollection.Name)]
public sealed class RedisOutageTests
{
    private const int UnavailableEventId = 130;

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
        Assert.Equal(1, await replicas.A.Warnings.WaitForAsync(UnavailableEventId));
        Assert.Equal(1, await replicas.B.Warnings.WaitForAsync(UnavailableEventId));

        await replicas.Redis.RestartAsync();
        await replicas.A.WaitAvailableAsync();
        await replicas.B.WaitAvailableAsync();
        await replicas.A.WaitGaugeAsync(1);

        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.B, "after-restart");
        await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.B, replicas.A, "after-restart");
        Assert.Equal(1, replicas.A.Warnings.Count(UnavailableEventId));
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
        Assert.False(replica.Registry.Available);
        Assert.Equal(1, await replica.Warnings.WaitForAsync(UnavailableEventId));
        var again = await StreamReading.SendAndReadAsync(replica.Client, CrossReplicaTests.Short("nobody-home"));
        Assert.Equal("[DONE]", again.DataEvents[^1]);
        Assert.Equal(1, replica.Warnings.Count(UnavailableEventId)); // once per outage, not per request or reconnect attempt
    }
}
