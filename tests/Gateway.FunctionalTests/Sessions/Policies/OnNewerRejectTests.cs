using Gateway.Tests.Infrastructure;
using Gateway.Tests.Protocols;

namespace Gateway.Tests.Sessions.Policies;

/// <summary>
/// <c>SessionStreams.OnNewer: reject</c> over the real wire: while a stream of a session key is active, a newer
/// request with the same key is refused with 409 <c>session_busy</c> in its API's own error shape, never reaches
/// the model server, and the first stream runs on to its end.
/// </summary>
public sealed class OnNewerRejectTests
{
    public static TheoryData<string> Apis => ["chat_completions", "messages", "responses"];

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task StreamActive_NewerRequestSameKey_Gets409SessionBusyInItsApiShape_FirstStreamCompletes(string api)
    {
        var c = ApiCase.Named(api);
        await using var stack = await ApiStack.StartAsync("reject", c, s => PolicySettings.Set(s, "OnNewer", "reject"));
        using var first = await StreamReading.SendAsync(stack.Client, c.Request("mock-1", "tell me a long story", 40, "r", ApiStack.Slow));
        Assert.Equal(200, (int)first.StatusCode);
        await stack.Stack.WaitForEntryAsync("r", e => e.TokensSent >= 2);

        using var newer = await stack.Client.SendAsync(c.Request("mock-1", "something else", 5, "r"));
        var body = await newer.Content.ReadAsStringAsync();
        var events = await c.ReadEventsAsync(await first.Content.ReadAsStreamAsync());

        Assert.Equal(409, (int)newer.StatusCode);
        Assert.Equal("session_busy", PolicySettings.ErrorName(api, body));
        Assert.Null(c.ErrorIn(events[^1])); // the first stream was not cut
        var entry = Assert.Single(await stack.Stack.Ledger.WaitForAsync(l => l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.True(entry.Completed);
        Assert.Equal(40, entry.TokensSent);
        var busy = await stack.Metrics.WaitForAsync("llm_gateway.sessions.busy_rejections");
        Assert.Equal(1, busy.Value);
        Assert.Equal(c.Label, busy["api"]);
        await stack.Metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == "session_busy");
    }

    [Fact]
    public async Task FirstStreamEnded_NewRequestSameKey_IsAccepted()
    {
        await using var stack = await ApiStack.StartAsync("reject-after", ApiCase.ChatCompletions, s => PolicySettings.Set(s, "OnNewer", "reject"));
        var first = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "one", "a", maxTokens: 5));
        var second = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "two", "a", maxTokens: 5));

        Assert.Equal("[DONE]", first.DataEvents[^1]);
        Assert.Equal(200, second.StatusCode);
        Assert.Equal("[DONE]", second.DataEvents[^1]);
        var ledger = await stack.Stack.Ledger.WaitForAsync(l => l.Count == 2 && l.All(e => e.EndedAt is not null), Wait.Timeout);
        Assert.All(ledger, e => Assert.True(e.Completed));
    }

    [Fact]
    public async Task OtherSessionKey_WhileAStreamIsActive_IsAccepted()
    {
        await using var stack = await ApiStack.StartAsync("reject-other", ApiCase.ChatCompletions, s => PolicySettings.Set(s, "OnNewer", "reject"));
        using var first = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "x", maxTokens: 40, headers: ApiStack.Slow));
        await stack.Stack.WaitForEntryAsync("x", e => e.TokensSent >= 2);

        var other = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "short", "y", maxTokens: 5));

        Assert.Equal(200, other.StatusCode);
        Assert.Equal("[DONE]", other.DataEvents[^1]);
        Assert.Equal("[DONE]", (await StreamReading.ReadToEndAsync(first)).DataEvents[^1]);
    }

    [Fact]
    public async Task ExplicitStop_OnARejectRoute_EndsTheStream_AndTheNextRequestIsAccepted()
    {
        await using var stack = await ApiStack.StartAsync("reject-stop", ApiCase.ChatCompletions, s => PolicySettings.Set(s, "OnNewer", "reject"));
        using var first = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "s", maxTokens: 400, headers: ApiStack.Slow));
        await stack.Stack.WaitForEntryAsync("s", e => e.TokensSent >= 2);

        using var stop = await stack.Client.PostAsync("/v1/sessions/s/cancel", null);
        var stopped = await StreamReading.ReadToEndAsync(first);
        await stack.Stack.WaitForEntryAsync("s", e => e.EndedAt is not null);
        var next = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "again", "s", maxTokens: 5));

        Assert.Equal(200, (int)stop.StatusCode);
        Assert.Contains("request_stopped", stopped.DataEvents[^1], StringComparison.Ordinal);
        Assert.Equal(200, next.StatusCode);
        Assert.Equal("[DONE]", next.DataEvents[^1]);
    }
}
