using System.Net;
using Gateway.Redis;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using MockLlm;
using StackExchange.Redis;

namespace Gateway.Tests.Affinity;

/// <summary>Two gateway replicas on one real redis-server, in front of the same three mock-llm destinations.</summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class AffinityAcrossReplicasTests
{
    [Theory]
    [InlineData(RedisKind.Single)]
    [InlineData(RedisKind.Cluster)]
    public async Task TwoReplicas_PickTheSameDestination_AndFollowAMoveOnlyOneOfThemSaw(RedisKind kind)
    {
        await using var redis = await RedisTarget.StartAsync(kind);
        var mocks = await AffinityCluster.StartMocksAsync();
        var prefix = "aff" + Guid.NewGuid().ToString("N")[..8];
        await using var a = await StartReplicaAsync(mocks, redis, prefix);
        await using var b = await StartReplicaAsync(mocks, redis, prefix);
        using var clientA = StreamReading.NewClient(a.BaseAddress);
        using var clientB = StreamReading.NewClient(b.BaseAddress);
        const string session = "shared-conversation";
        try
        {
            Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientA, session));
            Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientB, session));
            var first = Assert.Single(AffinityCluster.Holders(mocks, session));
            Assert.Equal(2, AffinityCluster.Count(mocks[first], session));

            // Replica A finds the destination gone, answers from the session's next choice and moves the session
            // there; B never sees it fail.
            var port = mocks[first].BaseAddress.Port;
            await mocks[first].DisposeAsync();
            Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientA, session));
            mocks[first] = await MockLlmServer.StartAsync(AffinityCluster.Quick, port);

            // Back again, the old destination is B's own first choice; Redis has B follow A's move.
            Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientB, session));
            Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientA, session));
            Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientB, session));
            Assert.Equal(0, AffinityCluster.Count(mocks[first], session));
            var moved = Assert.Single(AffinityCluster.Holders(mocks, session));
            Assert.NotEqual(first, moved);
            Assert.Equal(4, AffinityCluster.Count(mocks[moved], session));

            // What Redis holds: one hashed key under the deployment's prefix, naming the destination; no session id.
            await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
            var keys = await redis.KeysAsync($"{prefix}:affinity:*");
            var key = Assert.Single(keys);
            Assert.Matches($"^{prefix}:affinity:[0-9a-f]{{32}}$", key.ToString());
            Assert.DoesNotContain(session, key.ToString(), StringComparison.Ordinal);
            Assert.Equal(AffinityCluster.DestinationId(moved), (string?)await connection.GetDatabase().StringGetAsync(key));
            Assert.True(await connection.GetDatabase().KeyTimeToLiveAsync(key) is { } ttl && ttl > TimeSpan.Zero);
        }
        finally
        {
            foreach (var mock in mocks)
            {
                await mock.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task RedisDown_ReplicasFallBackToTheSameComputedPick()
    {
        await using var redis = await RedisTarget.StartAsync(RedisKind.Single);
        var mocks = await AffinityCluster.StartMocksAsync();
        await using var a = await StartReplicaAsync(mocks, redis, "llmgw");
        await using var b = await StartReplicaAsync(mocks, redis, "llmgw");
        using var clientA = StreamReading.NewClient(a.BaseAddress);
        using var clientB = StreamReading.NewClient(b.BaseAddress);
        try
        {
            await redis.Server.KillAsync();
            await WaitAvailableAsync(a, available: false);
            await WaitAvailableAsync(b, available: false);

            for (var i = 0; i < 6; i++)
            {
                var session = $"while-redis-is-down-{i}";
                Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientA, session));
                Assert.Equal(HttpStatusCode.OK, await AffinityCluster.SendAsync(clientB, session));
                Assert.Equal([AffinityCluster.FirstChoice(session)], AffinityCluster.Holders(mocks, session));
            }
        }
        finally
        {
            foreach (var mock in mocks)
            {
                await mock.DisposeAsync();
            }
        }
    }

    private static async Task<GatewayHost> StartReplicaAsync(MockLlmServer[] mocks, RedisTarget redis, string prefix)
    {
        var settings = AffinityCluster.Settings(mocks);
        settings["Gateway:Sessions:Redis"] = redis.ConnectionString;
        settings["Gateway:Sessions:RedisPrefix"] = prefix;
        var host = await GatewayHost.StartAsync(settings);
        await WaitAvailableAsync(host, available: true);
        return host;
    }

    private static async Task WaitAvailableAsync(GatewayHost host, bool available)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        await host.Services.GetRequiredService<SharedRedis>().WaitForAvailabilityAsync(available, deadline.Token);
    }
}
