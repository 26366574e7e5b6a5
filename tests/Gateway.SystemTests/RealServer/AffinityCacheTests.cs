using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Affinity;
using Gateway.Sessions;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>Why session affinity exists: two llama-server destinations behind a route with
/// <c>SessionStreams.Affinity</c>; a conversation's second turn goes where its first went and reuses
/// that server's prompt cache (<c>timings.cache_n</c>), which the other server cannot.</summary>
[Collection(LlamaServerCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class AffinityCacheTests(LlamaServerFixture fixture)
{
    [Fact]
    public async Task SecondTurn_SameKey_LandsOnTheSameServer_AndReusesItsPromptCache()
    {
        await using var second = await LlamaServer.StartAsync();
        LlamaServer[] servers = [fixture.Server, second];
        string[] ids = ["primary", "second"];
        await using var gateway = await GatewayHost.StartAsync(fixture.Server.BaseAddress, settings =>
        {
            settings["ReverseProxy:Clusters:llm:Destinations:second:Address"] = second.BaseAddress.ToString();
            settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.Affinity"] = "true";
        });
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var nonce = Guid.NewGuid().ToString("N");
        const string session = "conversation-with-a-cache";
        var home = Choice(session, ids);
        // A session id whose choice is the other server: the same second turn sent as another conversation.
        var stranger = Enumerable.Range(0, 100).Select(i => $"another-conversation-{i}").First(s => Choice(s, ids) != home);
        var marks = servers.Select(s => s.LineCount).ToArray();
        var before = await Task.WhenAll(servers.Select(s => s.TokensPredictedAsync()));

        var firstUser = $"{nonce}: tell me a long story about a dragon who lives in a castle by the sea and collects shiny stones.";
        var turn1 = await AskAsync(client, session, [Message("user", firstUser)]);
        var turn1Prompt = turn1.CacheN + turn1.PromptN;
        JsonObject[] secondTurn = [Message("user", firstUser), Message("assistant", turn1.Content), Message("user", "And then what happened?")];
        var turn2 = await AskAsync(client, session, secondTurn);
        var elsewhere = await AskAsync(client, stranger, secondTurn);

        // Each server's own count of generated tokens shows where the three requests went: both turns of
        // the session on its server, the stranger's on the other.
        await servers[home].WaitForReleasesAsync(2, marks[home]);
        await servers[1 - home].WaitForReleasesAsync(1, marks[1 - home]);
        Assert.Equal(turn1.Generated + turn2.Generated, await servers[home].TokensPredictedAsync() - before[home]);
        Assert.Equal(elsewhere.Generated, await servers[1 - home].TokensPredictedAsync() - before[1 - home]);
        Assert.True(turn2.CacheN >= 0.9 * turn1Prompt, $"turn 2 reused {turn2.CacheN} cached tokens of the {turn1Prompt} in turn 1's prompt");
        Assert.True(elsewhere.CacheN < turn1Prompt / 2, $"the server that never saw turn 1 reused {elsewhere.CacheN} of {turn1Prompt}");
    }

    private static int Choice(string session, string[] ids)
    {
        var scope = AffinityScope.Of("llm", SessionKey.TenantSessionOf(null, session));
        return Enumerable.Range(0, ids.Length).MaxBy(i => Rendezvous.Score(scope.Hash, ids[i]));
    }

    private static JsonObject Message(string role, string content) => new() { ["role"] = role, ["content"] = content };

    private static async Task<(string Content, int CacheN, int PromptN, int Generated)> AskAsync(HttpClient client, string session, JsonObject[] messages)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = JsonContent.Create(new JsonObject { ["stream"] = false, ["max_tokens"] = 8, ["messages"] = new JsonArray(messages.Select(m => m.DeepClone()).ToArray()) }),
        };
        request.Headers.Add("X-Session-Id", session);
        using var response = await client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, body);
        using var json = JsonDocument.Parse(body);
        var timings = json.RootElement.GetProperty("timings");
        return (json.RootElement.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!,
            timings.GetProperty("cache_n").GetInt32(), timings.GetProperty("prompt_n").GetInt32(), timings.GetProperty("predicted_n").GetInt32());
    }
}
