using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions;

/// <summary>Session ids from every kind of client: a header, a query string (browser EventSource),
/// a cookie, a JSON body field (an OpenAI SDK user who controls only the body).</summary>
public sealed class KeySourceTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private static void AssertSuperseded(StreamTranscript old)
    {
        Assert.True(old.EndedCleanly, $"ended with {old.ReadError}");
        Assert.Equal("request_superseded",
            JsonDocument.Parse(old.DataEvents[^1]).RootElement.GetProperty("error").GetProperty("type").GetString());
    }

    [Fact]
    public async Task QuerySessionId_GetSse_LikeEventSource_Supersedes()
    {
        await using var stack = await Stack.StartAsync(new global::MockLlm.Generation.MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 10, DefaultCompletionTokens = 200 });
        using var old = await StreamReading.SendAsync(stack.Client,
            new HttpRequestMessage(HttpMethod.Get, "/api/sse-stream?query=first%20question&session_id=es-1"));
        await stack.Ledger.WaitForAsync(l => l.Any(e => e.Path == "/api/sse-stream" && e.TokensSent >= 2), Wait.Timeout);

        var newer = await StreamReading.SendAndReadAsync(stack.Client,
            new HttpRequestMessage(HttpMethod.Get, "/api/sse-stream?query=second&session_id=es-1"), default);
        var oldTranscript = await StreamReading.ReadToEndAsync(old);

        AssertSuperseded(oldTranscript);
        Assert.Equal(200, newer.StatusCode);
        var first = stack.Ledger.Snapshot()[0];
        Assert.True((await stack.Ledger.WaitForAsync(l => l[0].EndedAt is not null, Wait.Timeout))[0].Cancelled);
        Assert.True(first.TokensSent < first.TokensPlanned);
    }

    [Fact]
    public async Task CookieSessionId_RouteSources_Supersedes()
    {
        await using var stack = await Stack.StartAsync(configure: s => s["ReverseProxy:Routes:llm:Metadata:SessionStreams.Sources"] = "cookie:sid");
        var oldRequest = StreamReading.ChatRequest("/v1/chat/completions", "long", sessionId: null, maxTokens: 200, headers: Slow);
        oldRequest.Headers.Add("Cookie", "theme=dark; sid=cookie-1");
        using var old = await StreamReading.SendAsync(stack.Client, oldRequest);
        await stack.Ledger.WaitForAsync(l => l.Any(e => e.TokensSent >= 2), Wait.Timeout);
        Assert.Equal(1, stack.Gateway.Registry.Count);

        var newRequest = StreamReading.ChatRequest("/v1/chat/completions", "short", sessionId: null, maxTokens: 2);
        newRequest.Headers.Add("Cookie", "sid=cookie-1");
        await StreamReading.SendAndReadAsync(stack.Client, newRequest);

        AssertSuperseded(await StreamReading.ReadToEndAsync(old));
    }

    [Fact]
    public async Task BodyFieldSessionId_OpenAiSdkStyleMetadata_Supersedes()
    {
        await using var stack = await Stack.StartAsync(configure: s => s["ReverseProxy:Routes:llm:Metadata:SessionStreams.Sources"] = "header:X-Session-Id,body:metadata.session_id");
        static HttpRequestMessage Request(string prompt, int maxTokens, Dictionary<string, string>? headers = null)
        {
            var json = $$"""{"model":"mock-1","stream":true,"max_tokens":{{maxTokens}},"metadata":{"session_id":"body-1"},"messages":[{"role":"user","content":"{{prompt}}"}]}""";
            var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            foreach (var (name, value) in headers ?? [])
            {
                request.Headers.Add(name, value);
            }

            return request;
        }

        using var old = await StreamReading.SendAsync(stack.Client, Request("long", 200, Slow));
        await stack.Ledger.WaitForAsync(l => l.Any(e => e.TokensSent >= 2), Wait.Timeout);
        await StreamReading.SendAndReadAsync(stack.Client, Request("short", 2));

        AssertSuperseded(await StreamReading.ReadToEndAsync(old));
        Assert.True((await stack.Ledger.WaitForAsync(l => l[0].EndedAt is not null, Wait.Timeout))[0].Cancelled);
    }

    [Fact]
    public async Task HeaderWinsOverQuery_SourcesTriedInOrder()
    {
        await using var stack = await Stack.StartAsync();
        var request = StreamReading.ChatRequest("/v1/chat/completions?session_id=from-query", "x", "from-header", maxTokens: 200, headers: Slow);
        using var response = await StreamReading.SendAsync(stack.Client, request);
        await stack.Ledger.WaitForAsync(l => l.Any(e => e.TokensSent >= 1), Wait.Timeout);

        // The query id is not the stream's key: stopping it finds nothing; the header id stops it.
        using var byQuery = await stack.Client.PostAsync("/v1/sessions/from-query/cancel", null);
        using var byHeader = await stack.Client.PostAsync("/v1/sessions/from-header/cancel", null);

        Assert.Equal(404, (int)byQuery.StatusCode);
        Assert.Equal(200, (int)byHeader.StatusCode);
        await StreamReading.ReadToEndAsync(response);
    }

    [Fact]
    public async Task QuerySessionIdSentTwice_400()
    {
        await using var stack = await Stack.StartAsync();
        using var response = await stack.Client.GetAsync("/api/sse-stream?query=x&session_id=a&session_id=b");

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("invalid_session_key", await response.Content.ReadAsStringAsync());
        Assert.Empty(stack.Ledger.Snapshot());
    }
}
