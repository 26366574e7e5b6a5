using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using Gateway.Protocols;
using Gateway.Streams;
using Gateway.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Streams;

/// <summary>
/// <c>SessionStreams.IncludeUsage</c>: a streaming Chat Completions or Completions request whose client did
/// not ask for usage goes upstream with <c>stream_options.include_usage</c>; the client's stream is what it
/// would have been without the gateway, and the accounting has the upstream's exact usage. Two gateways
/// in front of one mock: one route with the option, one without, compared byte for byte (the mock's
/// clock is pinned, so ids and timestamps match).
/// </summary>
public sealed class IncludeUsageTests
{
    private const string Clock = "1767225600";

    private sealed class Pair : IAsyncDisposable
    {
        public required Stack Plain { get; init; }
        public required GatewayHost Usage { get; init; }
        public required HttpClient UsageClient { get; init; }
        public required string UsageRoute { get; init; }

        public static async Task<Pair> StartAsync(int? lookAheadBytes = null)
        {
            var plain = await Stack.StartAsync(routeId: "plain" + Guid.NewGuid().ToString("N")[..8]);
            var route = "usage" + Guid.NewGuid().ToString("N")[..8];
            var usage = await GatewayHost.StartAsync(plain.Mock.BaseAddress, s =>
            {
                s[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.IncludeUsage"] = "true";
                if (lookAheadBytes is { } bytes)
                {
                    s["Gateway:Sessions:MaxBodyKeyBytes"] = bytes.ToString(System.Globalization.CultureInfo.InvariantCulture);
                }
            }, routeId: route);
            return new Pair { Plain = plain, Usage = usage, UsageClient = StreamReading.NewClient(usage.BaseAddress), UsageRoute = route };
        }

        public async ValueTask DisposeAsync()
        {
            UsageClient.Dispose();
            await Usage.DisposeAsync();
            await Plain.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/completions")]
    public async Task ClientWithoutUsage_IncludeUsageRoute_UpstreamAskedClientStreamByteIdentical(string path)
    {
        await using var pair = await Pair.StartAsync();
        var body = Body(path, "mock-1", "hello there", """ "stream":true,""");
        using var metrics = new MetricRecorder(pair.UsageRoute);

        var viaPlain = await SendAsync(pair.Plain.Client, path, body, "p");
        var viaUsage = await SendAsync(pair.UsageClient, path, body, "u");

        Assert.Equal(viaPlain, viaUsage);
        Assert.DoesNotContain("\"usage\"", viaUsage, StringComparison.Ordinal);
        Assert.EndsWith("data: [DONE]\n\n", viaUsage, StringComparison.Ordinal);
        Assert.False((await pair.Plain.WaitForEntryAsync("p", e => e.Completed)).IncludeUsage);
        Assert.True((await pair.Plain.WaitForEntryAsync("u", e => e.Completed)).IncludeUsage);
        var streamed = await metrics.WaitForAsync("llm_gateway.tokens.streamed");
        Assert.Equal(7, streamed.Value);
    }

    [Fact]
    public async Task ClientWithoutUsage_IncludeUsageRoute_AccountingHasTheUpstreamsExactUsage()
    {
        await using var pair = await Pair.StartAsync();
        var viaUsage = "usage-" + Guid.NewGuid().ToString("N")[..8];
        var viaPlain = "plain-" + Guid.NewGuid().ToString("N")[..8];
        const string path = "/v1/chat/completions";

        // What the upstream reports for this prompt, asked for by the client itself.
        var reference = await SendAsync(pair.Plain.Client, path,
            Body(path, "reference", "count my prompt please", """ "stream":true,"stream_options":{"include_usage":true},"""), "r");
        var prompt = UsageOf(reference).GetProperty("prompt_tokens").GetInt64();
        await SendAsync(pair.UsageClient, path, Body(path, viaUsage, "count my prompt please", """ "stream":true,"""), "u");
        await SendAsync(pair.Plain.Client, path, Body(path, viaPlain, "count my prompt please", """ "stream":true,"""), "p");

        // Prompt tokens reach the accounting only from a usage report: there with the option, absent without.
        var samples = await PromText.ParseAsync(pair.UsageClient);
        Assert.Equal(prompt, PromText.Sum(samples, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "input"), ("gen_ai_request_model", viaUsage)));
        Assert.Equal(1, PromText.Sum(samples, "gen_ai_client_token_usage_count", ("gen_ai_token_type", "input"), ("gen_ai_request_model", viaUsage)));
        Assert.Equal(0, PromText.Sum(samples, "gen_ai_client_token_usage_count", ("gen_ai_token_type", "input"), ("gen_ai_request_model", viaPlain)));
        Assert.Equal(7, PromText.Sum(samples, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "output"), ("gen_ai_request_model", viaUsage)));
    }

    [Fact]
    public async Task ClientAskedForUsage_IncludeUsageRoute_GetsTheUsageChunkUnchanged()
    {
        await using var pair = await Pair.StartAsync();
        const string path = "/v1/chat/completions";
        var body = Body(path, "mock-1", "hello", """ "stream":true,"stream_options":{"include_usage":true},""");

        var viaPlain = await SendAsync(pair.Plain.Client, path, body, "p");
        var viaUsage = await SendAsync(pair.UsageClient, path, body, "u");

        Assert.Equal(viaPlain, viaUsage);
        Assert.Equal(7, UsageOf(viaUsage).GetProperty("completion_tokens").GetInt64());
    }

    [Fact]
    public async Task ClientOwnStreamOptionsWithoutUsage_IncludeUsageRoute_BodyLeftAlone()
    {
        await using var pair = await Pair.StartAsync();
        const string path = "/v1/chat/completions";
        var body = Body(path, "mock-1", "hello", """ "stream":true,"stream_options":{"include_usage":false},""");

        var viaPlain = await SendAsync(pair.Plain.Client, path, body, "p");
        var viaUsage = await SendAsync(pair.UsageClient, path, body, "u");

        Assert.Equal(viaPlain, viaUsage);
        Assert.DoesNotContain("\"usage\"", viaUsage, StringComparison.Ordinal);
        Assert.False((await pair.Plain.WaitForEntryAsync("u", e => e.Completed)).IncludeUsage);
    }

    [Fact]
    public async Task NonStreamingRequest_IncludeUsageRoute_Untouched()
    {
        await using var pair = await Pair.StartAsync();
        const string path = "/v1/chat/completions";
        var body = Body(path, "mock-1", "hello", """ "stream":false,""");

        var viaPlain = await SendAsync(pair.Plain.Client, path, body, "p");
        var viaUsage = await SendAsync(pair.UsageClient, path, body, "u");

        Assert.Equal(viaPlain, viaUsage);
        Assert.False((await pair.Plain.WaitForEntryAsync("u", e => e.Completed)).IncludeUsage);
    }

    /// <summary>A body of about 1 MB with <c>stream</c> after its messages (the OpenAI Python SDK's order): it
    /// streams through, the member goes in before its closing brace, and every byte arrives (the upstream's
    /// prompt count is the same as for the same prompt sent directly). No look-ahead limits it: with
    /// <c>Gateway:Sessions:MaxBodyKeyBytes</c> at 64 KiB a 100 kB body asks for usage too.</summary>
    [Theory]
    [InlineData(1_000_000, null, true)]
    [InlineData(100_000, 65_536, true)]
    public async Task LargeBody_IncludeUsageRoute_ForwardedWhole(int size, int? lookAheadBytes, bool asksForUsage)
    {
        await using var pair = await Pair.StartAsync(lookAheadBytes);
        const string path = "/v1/chat/completions";
        var model = "large-" + Guid.NewGuid().ToString("N")[..8];
        var words = new StringBuilder();
        for (var i = 0; words.Length < size; i++)
        {
            words.Append("word").Append(i % 1000).Append(' ');
        }

        var prompt = words.ToString();
        var body = $$"""{"messages":[{"role":"user","content":"{{prompt}}"}],"model":"{{model}}","max_tokens":7,"stream":true}""";
        var reference = await SendAsync(pair.Plain.Client, path,
            $$$"""{"messages":[{"role":"user","content":"{{{prompt}}}"}],"model":"reference","max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}""", "r");

        var viaUsage = await SendAsync(pair.UsageClient, path, body, "u");

        Assert.EndsWith("data: [DONE]\n\n", viaUsage, StringComparison.Ordinal);
        Assert.DoesNotContain("\"usage\"", viaUsage, StringComparison.Ordinal);
        Assert.Equal(asksForUsage, (await pair.Plain.WaitForEntryAsync("u", e => e.Completed)).IncludeUsage);
        var samples = await PromText.ParseAsync(pair.UsageClient);
        var expectedPrompt = asksForUsage ? UsageOf(reference).GetProperty("prompt_tokens").GetInt64() : 0;
        Assert.Equal(expectedPrompt, PromText.Sum(samples, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "input"), ("gen_ai_request_model", model)));
    }

    [Fact]
    public async Task OpenAiDotnetSdk_StreamingThroughIncludeUsageRoute_CompletesWithUsage()
    {
        await using var pair = await Pair.StartAsync();
        var options = new OpenAIClientOptions { Endpoint = new Uri(pair.Usage.BaseAddress, "v1/"), NetworkTimeout = Wait.Timeout, RetryPolicy = new ClientRetryPolicy(0) };
        var client = new ChatClient("mock-1", new ApiKeyCredential("sk-test"), options);
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        ChatTokenUsage? usage = null;

        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("hello")], new ChatCompletionOptions { MaxOutputTokenCount = 6 }))
        {
            foreach (var part in update.ContentUpdate)
            {
                text.Append(part.Text);
            }

            finish ??= update.FinishReason;
            usage ??= update.Usage;
        }

        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.True(text.Length > 0);
        Assert.Equal(6, usage?.OutputTokenCount); // the SDK asks for usage itself, and gets it
        var entry = await pair.Plain.WaitForEntryAsync(null, e => e.Completed);
        Assert.Equal(6, entry.TokensSent);
    }

    [Theory]
    [InlineData("yes")]
    [InlineData("")]
    [InlineData("true\u0000")]
    public async Task BadIncludeUsageMetadata_Start_FailsNamingTheKey(string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.IncludeUsage"] = value + new string('x', value.Length == 0 ? 0 : 5000);

        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var app = GatewayHost.Build(settings);
            await app.StartAsync();
            await app.StopAsync();
        });

        Assert.Contains("ReverseProxy:Routes:llm:Metadata:SessionStreams.IncludeUsage", error.ToString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void FindUsageEvent_TakesOnlyTheUsageOnlyEvent(string newline)
    {
        string[] events =
        [
            """data: {"id":"x","choices":[],"prompt_filter_results":[]}""", // Azure's first chunk: no usage, kept
            """data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}""",
            """data: {"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}""",
            "data: [DONE]",
        ];
        var text = string.Concat(events.Select(e => e + newline + newline));
        var bytes = Encoding.UTF8.GetBytes(text);

        Assert.True(ResponseTap.FindUsageEvent(bytes, ended: false, ApiAdapters.ChatCompletions, out var start, out var end));

        Assert.Equal(events[2] + newline + newline, text[start..end]);
        Assert.False(ResponseTap.FindUsageEvent(bytes.AsSpan(0, start + 20), ended: false, ApiAdapters.ChatCompletions, out _, out _)); // not whole yet
    }

    private static string Body(string path, string model, string prompt, string streamMembers) =>
        path.EndsWith("/chat/completions", StringComparison.Ordinal)
            ? $$"""{"model":"{{model}}",{{streamMembers}}"max_tokens":7,"messages":[{"role":"user","content":"{{prompt}}"}]}"""
            : $$"""{"model":"{{model}}",{{streamMembers}}"max_tokens":7,"prompt":"{{prompt}}"}""";

    private static async Task<string> SendAsync(HttpClient client, string path, string body, string session)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Session-Id", session);
        request.Headers.Add("X-Mock-Clock", Clock);
        request.Headers.Add("X-Mock-Completion-Tokens", "7");
        using var response = await client.SendAsync(request);
        Assert.Equal(200, (int)response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private static JsonElement UsageOf(string sse) =>
        sse.Split("\n\n").Select(e => e.Trim()).Where(e => e.StartsWith("data: {", StringComparison.Ordinal))
            .Select(e => JsonDocument.Parse(e[6..]).RootElement)
            .Single(e => e.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
            .GetProperty("usage");
}
