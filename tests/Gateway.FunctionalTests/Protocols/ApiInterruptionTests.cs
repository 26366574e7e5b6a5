using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Protocols;

/// <summary>
/// Every API the gateway understands, interrupted mid-stream over the real wire: the old client's last
/// event is its API's own error naming the reason, no event before it is torn, the mock's ledger shows
/// the upstream stopped, and the metrics carry the API, the tokens streamed and a saving capped by the
/// API's own cap field. (The official SDKs' view of the same is in <see cref="SdkInterruptionTests"/>.)
/// </summary>
public sealed class ApiSupersedeTests
{
    public static TheoryData<string> Apis => ApiCase.Names();

    [Theory]
    [MemberData(nameof(Apis))]
    public Task NewerRequestSameKey_EveryApi_OldClientGetsItsNativeErrorAndTheUpstreamStops(string api) =>
        ApiInterruption.RunAsync(ApiCase.Named(api), "superseded", async (stack, c) =>
        {
            var newer = await StreamReading.SendAsync(stack.Client, c.Request("mock-1", "short", 5, "s"));
            var events = await c.ReadEventsAsync(await newer.Content.ReadAsStreamAsync());
            Assert.Null(c.ErrorIn(events[^1])); // the newer stream runs to its end
        });
}

public sealed class ApiStopTests
{
    public static TheoryData<string> Apis => ApiCase.Names();

    [Theory]
    [MemberData(nameof(Apis))]
    public Task ExplicitStop_EveryApi_OldClientGetsItsNativeErrorAndTheUpstreamStops(string api) =>
        ApiInterruption.RunAsync(ApiCase.Named(api), "stopped", async (stack, _) =>
        {
            using var stop = await stack.Client.PostAsync("/v1/sessions/s/cancel", null);
            Assert.Equal(200, (int)stop.StatusCode);
        });
}

public sealed class ApiUpstreamResetTests
{
    public static TheoryData<string> Apis => ApiCase.Names();

    [Theory]
    [MemberData(nameof(Apis))]
    public Task UpstreamResetMidStream_EveryApi_ClientGetsItsNativeErrorNotATruncatedAnswer(string api) =>
        ApiInterruption.RunAsync(ApiCase.Named(api), "upstream_reset", null);
}

public sealed class ApiClientDropTests
{
    public static TheoryData<string> Apis => ApiCase.Names();

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task ClientDropsMidStream_EveryApi_UpstreamStopsAndTheDropIsCounted(string api)
    {
        var c = ApiCase.Named(api);
        await using var stack = await ApiStack.StartAsync("drop", c);
        var response = await StreamReading.SendAsync(stack.Client, c.Request("mock-1", "tell me a long story", 200, "d", ApiStack.Slow));
        Assert.Equal(200, (int)response.StatusCode);
        await stack.Stack.WaitForEntryAsync("d", e => e.TokensSent >= 3);

        response.Dispose();
        stack.Client.Dispose();

        var entry = await stack.Stack.WaitForEntryAsync("d", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        var (ended, streamed, saved) = await stack.EndedAsync("client_disconnected");
        Assert.Equal(c.Label, ended["api"]);
        Assert.InRange(streamed.Value, 1, entry.TokensSent);
        Assert.Equal("cap", saved!["estimator"]);
        Assert.Equal(200 - streamed.Value, saved.Value);
    }
}

public sealed class ApiCompletionTests
{
    public static TheoryData<string> Apis => ApiCase.Names();

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task StreamRunsToItsEnd_EveryApi_TokensStreamedEqualTheLedgerAndTheClientGetsEveryByte(string api)
    {
        var c = ApiCase.Named(api);
        await using var stack = await ApiStack.StartAsync("done", c);
        using var direct = new HttpClient { BaseAddress = stack.Stack.Mock.BaseAddress };
        var headers = new Dictionary<string, string> { ["X-Mock-Completion-Tokens"] = "9", ["X-Mock-Clock"] = "1767225600" };

        using var through = await StreamReading.SendAsync(stack.Client, c.Request("mock-1", "count me", 50, "c", headers));
        var throughBytes = await through.Content.ReadAsByteArrayAsync();
        using var straight = await direct.SendAsync(c.Request("mock-1", "count me", 50, "direct", headers));
        var straightBytes = await straight.Content.ReadAsByteArrayAsync();

        Assert.Equal(200, (int)through.StatusCode);
        Assert.Equal(System.Text.Encoding.UTF8.GetString(straightBytes), System.Text.Encoding.UTF8.GetString(throughBytes));
        var entry = await stack.Stack.WaitForEntryAsync("c", e => e.EndedAt is not null);
        Assert.True(entry.Completed);
        var (ended, streamed, _) = await stack.EndedAsync("completed");
        Assert.Equal(c.Label, ended["api"]);
        Assert.Equal(entry.TokensSent, streamed.Value);
        // The request's model, or the one the response names (llama.cpp's last event); TGI names none.
        Assert.Equal(c.Name == "tgi" ? "unknown" : "mock-1", ended["model"]);
    }
}

/// <summary>The shared course of an interruption: a long stream, the interruption, what each side saw.</summary>
internal static class ApiInterruption
{
    public static async Task RunAsync(ApiCase c, string reason, Func<ApiStack, ApiCase, Task>? interrupt)
    {
        await using var stack = await ApiStack.StartAsync(reason, c);
        var headers = new Dictionary<string, string>(ApiStack.Slow);
        if (interrupt is null)
        {
            headers["X-Mock-Fail-After"] = "4"; // the mock aborts its connection after 4 tokens
        }

        using var old = await StreamReading.SendAsync(stack.Client, c.Request("mock-1", "tell me a long story", 200, "s", headers));
        Assert.Equal(200, (int)old.StatusCode);
        var reading = c.ReadEventsAsync(await old.Content.ReadAsStreamAsync());
        await stack.Stack.WaitForEntryAsync("s", e => e.TokensSent >= 3);
        if (interrupt is not null)
        {
            await interrupt(stack, c);
        }

        var events = await reading;

        var notice = ApiStack.Notice(reason);
        var error = c.ErrorIn(events[^1]);
        Assert.True(error is not null, $"{c}: the last event is not an error: {events[^1].Data}");
        Assert.Equal(notice.Message, error.Message);
        Assert.True(error.Type is null || error.Type == notice.Type, $"{c}: type {error.Type}");
        Assert.True(error.Code is null || error.Code == notice.Code, $"{c}: code {error.Code}");
        foreach (var (_, data) in events.SkipLast(1))
        {
            using var whole = JsonDocument.Parse(data); // no torn event before the notice
            Assert.Null(c.ErrorIn((null, data)));
        }

        var entry = await stack.Stack.WaitForEntryAsync("s", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled || entry.Failed, $"{c}: {entry}");
        Assert.True(entry.TokensSent < entry.TokensPlanned, $"{c}: {entry}");

        var outcome = reason == "upstream_reset" ? "upstream_error" : reason;
        var (ended, streamed, saved) = await stack.EndedAsync(outcome);
        Assert.Equal(c.Label, ended["api"]);
        Assert.InRange(streamed.Value, 1, entry.TokensSent); // an upstream reset can drop the last bytes in flight
        if (saved is not null)
        {
            // 200 is under the prior (256), so the estimate is the API's own cap field minus what streamed.
            Assert.Equal("cap", saved["estimator"]);
            Assert.Equal(200 - streamed.Value, saved.Value);
            Assert.Equal(c.Label, saved["api"]);
        }
    }
}

/// <summary>How the OpenAI and Anthropic Python SDKs write a long request: the conversation first, the
/// model and cap after it. The facts come from the whole body as it is forwarded.</summary>
public sealed class LongPromptTests
{
    [Theory]
    [InlineData("/v1/chat/completions", "max_tokens", "chat_completions")]
    [InlineData("/v1/messages", "max_tokens", "messages")]
    [InlineData("/v1/responses", "max_output_tokens", "responses")]
    public async Task MessagesFirst300KbBody_Superseded_IsLabelledWithItsModelAndCappedByItsCap(string path, string capField, string api)
    {
        var c = ApiCase.Named(api);
        await using var stack = await ApiStack.StartAsync("long", c);
        var conversation = new string('w', 300 * 1024);
        var input = api == "responses" ? $"\"input\":\"{conversation}\"" : $"\"messages\":[{{\"role\":\"user\",\"content\":\"{conversation}\"}}]";
        var body = $"{{{input},\"stream\":true,\"model\":\"long-context-model\",\"{capField}\":180}}";
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Session-Id", "long");
        foreach (var (name, value) in ApiStack.Slow)
        {
            request.Headers.Add(name, value);
        }

        using var old = await StreamReading.SendAsync(stack.Client, request);
        var reading = c.ReadEventsAsync(await old.Content.ReadAsStreamAsync());
        var active = await stack.Metrics.WaitForAsync("llm_gateway.streams.active");
        await stack.Stack.WaitForEntryAsync("long", e => e.TokensSent >= 3);
        using var newer = await StreamReading.SendAsync(stack.Client, c.Request("mock-1", "short", 3, "long"));
        await reading;

        Assert.Equal("long-context-model", active["model"]);
        var (ended, streamed, saved) = await stack.EndedAsync("superseded");
        Assert.Equal("long-context-model", ended["model"]);
        Assert.Equal("long-context-model", saved!["model"]);
        Assert.Equal("cap", saved["estimator"]);
        Assert.Equal(180 - streamed.Value, saved.Value);
    }
}
