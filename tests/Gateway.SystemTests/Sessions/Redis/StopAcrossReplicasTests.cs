using System.Net.Http.Headers;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Tests.Infrastructure;
using StackExchange.Redis;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>The explicit stop across replicas: it counts only streams that really stopped, and a storm of
/// stops neither splits the replicas nor gets in the way of a supersede.</summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class StopAcrossReplicasTests
{
    private static HttpRequestMessage Stop(string sessionId, string authorization)
    {
        var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        return stop;
    }

    /// <summary>Writes the owner record a replica leaves behind for <paramref name="sessionId"/> when it
    /// crashes, or when its release was skipped while Redis was away.</summary>
    private static async Task LeaveOwnerRecordAsync(RedisServer server, string sessionId, string authorization, string replica)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(server.ConnectionString);
        var hash = RedisSessionRegistry.Hash(SessionKey.Create("llm", authorization, sessionId).Value);
        Assert.True(await redis.GetDatabase().StringSetAsync($"llmgw:{{{hash}}}:owner", $"{replica}:1234567", TimeSpan.FromSeconds(30)));
    }

    [Fact]
    public async Task StaleOwnerRecords_OfACrashedReplicaAndOfASkippedRelease_AreNotCountedAsStopped()
    {
        await using var replicas = await Replicas.StartAsync();
        await LeaveOwnerRecordAsync(replicas.Redis, "ghost", "Bearer alice", "0123456789abcdef"); // a replica that is gone
        await LeaveOwnerRecordAsync(replicas.Redis, "ended", "Bearer alice", replicas.A.Registry.ReplicaId); // A's, stream long over

        using var ghost = await replicas.B.Client.SendAsync(Stop("ghost", "Bearer alice"));
        using var ended = await replicas.B.Client.SendAsync(Stop("ended", "Bearer alice"));

        Assert.Equal(404, (int)ghost.StatusCode);
        Assert.Equal(404, (int)ended.StatusCode);
    }

    [Fact]
    public async Task StopStorm_ManyTenantsManyLeases_CrossReplicaSupersedeStillWorks_RedisStaysAvailable()
    {
        await using var replicas = await Replicas.StartAsync();
        // Many leases on A (slow streams), for the replicas to look through if a stop made them scan.
        // Opened a few at a time: a burst of claims slower than the Redis timeout is another matter.
        var trickle = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "1", ["X-Mock-Completion-Tokens"] = "1000" };
        var held = new List<HttpResponseMessage>();
        try
        {
            for (var i = 0; i < 300; i += 10)
            {
                held.AddRange(await Task.WhenAll(Enumerable.Range(i, 10).Select(n => StreamReading.SendAsync(replicas.A.Client,
                    StreamReading.ChatRequest("/v1/chat/completions", "x", $"held-{n}", maxTokens: 1000, authorization: $"Bearer holder-{n % 10}", headers: trickle)))));
            }

            Assert.All(held, r => Assert.Equal(200, (int)r.StatusCode));
            Assert.Equal(0, replicas.A.Logs.WarningCount(130) + replicas.B.Logs.WarningCount(130));

            // Stops for sessions that do not exist, from 40 credentials, to both replicas, 40 at a time,
            // at least 400 and for as long as a stream on A is being superseded from B.
            using var superseded = new CancellationTokenSource();
            var statuses = new System.Collections.Concurrent.ConcurrentBag<int>();
            var storm = Task.Run(async () =>
            {
                for (var wave = 0; wave < 10 || !superseded.IsCancellationRequested; wave++)
                {
                    await Task.WhenAll(Enumerable.Range(0, 40).Select(async i =>
                    {
                        using var response = await (i % 2 == 0 ? replicas.A : replicas.B).Client.SendAsync(Stop($"nothing-{wave}-{i}", $"Bearer storm-{i}"));
                        statuses.Add((int)response.StatusCode);
                    }));
                }
            });
            await CrossReplicaTests.AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.B, "during-storm");
            await superseded.CancelAsync();
            await storm;

            Assert.True(statuses.Count >= 400);
            Assert.All(statuses, s => Assert.True(s is 404 or 429, $"a stop answered {s}"));
            Assert.True(replicas.A.Redis.Available && replicas.B.Redis.Available);
            Assert.Equal(0, replicas.A.Logs.WarningCount(130) + replicas.B.Logs.WarningCount(130));
            Assert.Equal(300, replicas.Mock.Ledger.Snapshot().Count(e => e.SessionId!.StartsWith("held-", StringComparison.Ordinal) && e.EndedAt is null));
        }
        finally
        {
            foreach (var response in held)
            {
                response.Dispose();
            }
        }
    }
}
