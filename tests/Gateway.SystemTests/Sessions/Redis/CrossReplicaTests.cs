using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>Two gateway replicas over one real redis-server, in front of one mock model server.</summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class CrossReplicaTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    internal static HttpRequestMessage Long(string sessionId, string? authorization = null) =>
        StreamReading.ChatRequest("/v1/chat/completions", "tell me a long story", sessionId, maxTokens: 400, authorization: authorization, headers: Slow);

    internal static HttpRequestMessage Short(string sessionId) =>
        StreamReading.ChatRequest("/v1/chat/completions", "short one", sessionId, maxTokens: 5);

    internal static string? ErrorType(StreamTranscript transcript) =>
        transcript.DataEvents.Count > 0 && transcript.DataEvents[^1].StartsWith('{')
        && JsonDocument.Parse(transcript.DataEvents[^1]).RootElement.TryGetProperty("error", out var error)
            ? error.GetProperty("type").GetString()
            : null;

    /// <summary>The explicit stop of <paramref name="sessionId"/>, sent to <paramref name="via"/> with a credential.</summary>
    private static async Task<HttpResponseMessage> StopAsync(Replica via, string sessionId, string authorization)
    {
        using var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        return await via.Client.SendAsync(stop);
    }

    /// <summary>An older stream on <paramref name="older"/>, a newer request for the same session on
    /// <paramref name="newer"/>: the older client is told it was superseded and its upstream stops.</summary>
    internal static async Task AssertSupersedesAsync(MockLlmServer mock, Replica older, Replica newer, string sessionId)
    {
        var index = mock.Ledger.Snapshot().Count(e => e.SessionId == sessionId);
        using var oldResponse = await StreamReading.SendAsync(older.Client, Long(sessionId));
        Assert.Equal(200, (int)oldResponse.StatusCode);
        await Wait.ForEntryAsync(mock.Ledger, sessionId, e => e.TokensSent >= 2, index);

        var fresh = await StreamReading.SendAndReadAsync(newer.Client, Short(sessionId));
        var old = await StreamReading.ReadToEndAsync(oldResponse);

        Assert.True(old.EndedCleanly, $"old stream ended with {old.ReadError}");
        Assert.Equal("request_superseded", ErrorType(old));
        Assert.DoesNotContain("[DONE]", old.DataEvents);
        Assert.Equal("[DONE]", fresh.DataEvents[^1]);

        var oldEntry = await Wait.ForEntryAsync(mock.Ledger, sessionId, e => e.EndedAt is not null, index);
        Assert.True(oldEntry.Cancelled);
        Assert.True(oldEntry.TokensSent < oldEntry.TokensPlanned, $"{oldEntry.TokensSent} of {oldEntry.TokensPlanned}");
        var newEntry = await Wait.ForEntryAsync(mock.Ledger, sessionId, e => e.EndedAt is not null, index + 1);
        Assert.True(newEntry.Completed);
    }

    [Theory]
    [InlineData(RedisKind.Single)]
    [InlineData(RedisKind.Cluster)]
    public async Task StreamOnA_NewerRequestOnB_OldClientSuperseded_UpstreamCancelled_NewerCompletes(RedisKind kind)
    {
        await using var replicas = await Replicas.StartAsync(kind: kind);
        await AssertSupersedesAsync(replicas.Mock, replicas.A, replicas.B, "cross-1");
        await AssertSupersedesAsync(replicas.Mock, replicas.B, replicas.A, "cross-1");
    }

    [Theory]
    [InlineData(RedisKind.Single)]
    [InlineData(RedisKind.Cluster)]
    public async Task SimultaneousClaimsOnTwoReplicas_ExactlyOneSurvives(RedisKind kind)
    {
        await using var replicas = await Replicas.StartAsync(kind: kind);
        var quick = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "40", ["X-Mock-Completion-Tokens"] = "60" };
        for (var round = 0; round < 5; round++)
        {
            var session = $"race-{round}";
            var onA = StreamReading.SendAndReadAsync(replicas.A.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "a", session, maxTokens: 60, headers: quick));
            var onB = StreamReading.SendAndReadAsync(replicas.B.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "b", session, maxTokens: 60, headers: quick));
            var both = await Task.WhenAll(onA, onB);

            // Superseded before its first byte (409) or after (the SSE error event): either way, ended.
            var survivors = both.Count(t => t.StatusCode == 200 && t.DataEvents.Count > 0 && t.DataEvents[^1] == "[DONE]");
            var superseded = both.Count(t => t.StatusCode == 409 || ErrorType(t) == "request_superseded");
            Assert.True(survivors == 1 && superseded == 1,
                $"round {round}: A {both[0].StatusCode} {string.Join(" ", both[0].DataEvents.TakeLast(1))}; B {both[1].StatusCode} {string.Join(" ", both[1].DataEvents.TakeLast(1))}");
        }
    }

    [Theory]
    [InlineData(RedisKind.Single)]
    [InlineData(RedisKind.Cluster)]
    public async Task StopSentToB_StreamOnA_StopsWithRequestStopped_AndCounts(RedisKind kind)
    {
        await using var replicas = await Replicas.StartAsync(kind: kind);
        using var stream = await StreamReading.SendAsync(replicas.A.Client, Long("stop-x", "Bearer alice"));
        await replicas.WaitForEntryAsync("stop-x", e => e.TokensSent >= 2);

        using var stopped = await StopAsync(replicas.B, "stop-x", "Bearer alice");
        var transcript = await StreamReading.ReadToEndAsync(stream);

        Assert.Equal(200, (int)stopped.StatusCode);
        Assert.Equal(1, JsonDocument.Parse(await stopped.Content.ReadAsStringAsync()).RootElement.GetProperty("cancelled").GetInt32());
        Assert.True(transcript.EndedCleanly);
        Assert.Equal("request_stopped", ErrorType(transcript));
        Assert.True((await replicas.WaitForEntryAsync("stop-x", e => e.EndedAt is not null)).Cancelled);
    }

    [Fact]
    public async Task StopSentToB_AnotherTenantsStreamOnA_404_StreamGoesOn()
    {
        await using var replicas = await Replicas.StartAsync();
        using var stream = await StreamReading.SendAsync(replicas.A.Client, Long("stop-y", "Bearer alice"));
        await replicas.WaitForEntryAsync("stop-y", e => e.TokensSent >= 2);

        using var refused = await StopAsync(replicas.B, "stop-y", "Bearer mallory");

        Assert.Equal(404, (int)refused.StatusCode);
        // A stop for alice's session from B afterwards still finds it: the stream was not touched.
        using var stopped = await StopAsync(replicas.B, "stop-y", "Bearer alice");
        Assert.Equal(200, (int)stopped.StatusCode);
        Assert.Equal("request_stopped", ErrorType(await StreamReading.ReadToEndAsync(stream)));
    }

    [Fact]
    public async Task TwoPrefixesOnOneRedis_DoNotInterfere_AndRedisHoldsNoSessionId()
    {
        await using var replicas = await Replicas.StartAsync(prefixA: "deploy-one", prefixB: "deploy-two");
        using var first = await StreamReading.SendAsync(replicas.A.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "a", "shared-id", maxTokens: 40,
                headers: new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "40", ["X-Mock-Completion-Tokens"] = "40" }));
        await replicas.WaitForEntryAsync("shared-id", e => e.TokensSent >= 2);

        await using (var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(replicas.Redis.ConnectionString))
        {
            var keys = redis.GetServer(redis.GetEndPoints()[0]).Keys(pattern: "*").Select(k => (string)k!).ToList();
            Assert.NotEmpty(keys);
            Assert.All(keys, k => Assert.StartsWith("deploy-one:", k, StringComparison.Ordinal));
            Assert.All(keys, k => Assert.DoesNotContain("shared-id", k, StringComparison.Ordinal));
        }

        var second = await StreamReading.SendAndReadAsync(replicas.B.Client, Short("shared-id"));
        var firstTranscript = await StreamReading.ReadToEndAsync(first);

        Assert.Equal("[DONE]", second.DataEvents[^1]);
        Assert.Equal("[DONE]", firstTranscript.DataEvents[^1]); // the other deployment's claim did not touch it
        Assert.True((await replicas.WaitForEntryAsync("shared-id", e => e.EndedAt is not null)).Completed);
    }
}
