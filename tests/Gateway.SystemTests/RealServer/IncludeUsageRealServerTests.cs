using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>
/// <c>SessionStreams.IncludeUsage</c> in front of the real llama-server: the member the gateway writes before
/// the body's closing brace (and the spaces it writes when usage is not asked for) are read by the server's
/// own JSON parser; the client's stream is without the usage chunk it did not ask for, and the accounting has
/// the server's exact prompt count.
/// </summary>
[Collection(LlamaServerCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class IncludeUsageRealServerTests(LlamaServerFixture fixture)
{
    private const string Prompt = "tell me about the sea";

    [Fact]
    public async Task StreamingWithoutUsage_ServerAskedForUsage_ClientStreamWithoutIt_AccountingHasServerPromptCount()
    {
        var route = "rsu" + Guid.NewGuid().ToString("N")[..10];
        var model = "usage-" + Guid.NewGuid().ToString("N")[..8];
        await using var gateway = await GatewayHost.StartAsync(fixture.Server.BaseAddress,
            s => s[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.IncludeUsage"] = "true", routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route);
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        using var direct = fixture.Server.NewClient();

        // The truth: the server's usage for the same prompt, asked for by the client itself.
        var reference = await PostAsync(direct, Body("reference", """ "stream":true,"stream_options":{"include_usage":true},"""));
        var prompt = UsageOf(reference).GetProperty("prompt_tokens").GetInt64();

        var viaGateway = await PostAsync(client, Body(model, """ "stream":true,"""));

        Assert.EndsWith("data: [DONE]\n\n", viaGateway.ReplaceLineEndings("\n"), StringComparison.Ordinal);
        Assert.DoesNotContain("\"usage\":{", viaGateway, StringComparison.Ordinal);
        Assert.Contains("\"finish_reason\":\"length\"", viaGateway, StringComparison.Ordinal);
        await ended.WaitAsync();
        var samples = await PromText.ParseAsync(client);
        Assert.Equal(prompt, PromText.Sum(samples, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "input"), ("gen_ai_request_model", model)));
        Assert.Equal(5, PromText.Sum(samples, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "output"), ("gen_ai_request_model", model)));
    }

    [Fact]
    public async Task NonStreaming_IncludeUsageRoute_PaddedBodyAnsweredAsSent()
    {
        var route = "rsu" + Guid.NewGuid().ToString("N")[..10];
        await using var gateway = await GatewayHost.StartAsync(fixture.Server.BaseAddress,
            s => s[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.IncludeUsage"] = "true", routeId: route);
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var answer = JsonDocument.Parse(await PostAsync(client, Body("padded", """ "stream":false,"""))).RootElement;

        Assert.Equal("length", answer.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(5, answer.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    private static string Body(string model, string streamMembers) =>
        $$"""{"model":"{{model}}","messages":[{"role":"user","content":"{{Prompt}}"}],{{streamMembers}}"max_tokens":5}""";

    private static async Task<string> PostAsync(HttpClient client, string body)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Session-Id", Guid.NewGuid().ToString("N"));
        using var response = await client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return text;
    }

    private static JsonElement UsageOf(string sse) =>
        sse.Split('\n').Select(l => l.Trim()).Where(l => l.StartsWith("data: {", StringComparison.Ordinal))
            .Select(l => JsonDocument.Parse(l[6..]).RootElement)
            .Single(e => e.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
            .GetProperty("usage");
}
