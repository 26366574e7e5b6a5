using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>
/// What a claim and a stop send between replicas, counted by the replicas that receive it: a claim that supersedes
/// nobody elsewhere sends nothing, one that supersedes a stream on replica R reaches R only, and a stop reaches only
/// the replica that owns a stream of the session (and its answer only the stopper). Three replicas, on one redis-server and on a Redis Cluster.
/// </summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class MessagesPerClaimTests
{
    private const string Alice = "Bearer alice";

    [Theory]
    [InlineData(RedisKind.Single)]
    [InlineData(RedisKind.Cluster)]
    public async Task ClaimsAndStops_ThreeReplicas_EachMessageReachesOnlyTheReplicaItConcerns(RedisKind kind)
    {
        await using var redis = await RedisTarget.StartAsync(kind);
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 20 });
        await using var a = await Replica.StartAsync(mock.BaseAddress, redis.ConnectionString);
        await using var b = await Replica.StartAsync(mock.BaseAddress, redis.ConnectionString);
        await using var c = await Replica.StartAsync(mock.BaseAddress, redis.ConnectionString);
        Replica[] all = [a, b, c];
        foreach (var replica in all)
        {
            await replica.WaitAvailableAsync();
        }

        long[] Received() => [.. all.Select(r => r.Redis.MessagesReceived)];
        var before = Received();

        // Fresh keys on every replica, and a local supersede on A: nothing for anyone.
        using var first = await StreamReading.SendAsync(a.Client, CrossReplicaTests.Long("talk", Alice));
        await Wait.ForEntryAsync(mock.Ledger, "talk", e => e.TokensSent >= 1);
        using var again = await StreamReading.SendAsync(a.Client, CrossReplicaTests.Long("talk", Alice));
        await Wait.ForEntryAsync(mock.Ledger, "talk", e => e.TokensSent >= 1, index: 1);
        foreach (var (replica, i) in all.Select((r, i) => (r, i)))
        {
            var own = await StreamReading.SendAndReadAsync(replica.Client, CrossReplicaTests.Short($"alone-{i}"));
            Assert.Equal("[DONE]", own.DataEvents[^1]);
        }

        Assert.Equal(before, Received());

        // B supersedes A's stream: A hears of it, nobody else.
        using var fromB = await StreamReading.SendAsync(b.Client, CrossReplicaTests.Long("talk", Alice));
        using (var deadline = new CancellationTokenSource(Wait.Timeout))
        {
            Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(again, deadline.Token)));
        }

        await Wait.ForEntryAsync(mock.Ledger, "talk", e => e.TokensSent >= 1, index: 2);
        Assert.Equal([before[0] + 1, before[1], before[2]], Received());

        // C stops the session: B (the owner) hears the stop, C its answer, A nothing.
        using var stop = new HttpRequestMessage(HttpMethod.Post, "/v1/sessions/talk/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse(Alice);
        using var stopped = await c.Client.SendAsync(stop);
        Assert.Equal(200, (int)stopped.StatusCode);
        Assert.Equal(1, JsonDocument.Parse(await stopped.Content.ReadAsStringAsync()).RootElement.GetProperty("cancelled").GetInt32());
        using (var deadline = new CancellationTokenSource(Wait.Timeout))
        {
            Assert.Equal("request_stopped", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(fromB, deadline.Token)));
        }

        Assert.Equal([before[0] + 1, before[1] + 1, before[2] + 1], Received());
        Assert.True((await Wait.ForEntryAsync(mock.Ledger, "talk", e => e.EndedAt is not null, index: 2)).Cancelled);

        // Nothing leaks: every replica's registry is back to zero once the streams ended.
        using var settled = new CancellationTokenSource(Wait.Timeout);
        foreach (var replica in all)
        {
            await replica.Local.WhenEmptyAsync(settled.Token);
            Assert.Equal(0, replica.Registry.TrackedCount);
        }
    }
}
