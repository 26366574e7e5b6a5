using Gateway.Tests.Infrastructure;
using Gateway.Tests.Protocols;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Sessions.Policies;

/// <summary>
/// <c>SessionStreams.Debounce</c> over the real wire, in front of the mock whose ledger is the truth of what
/// reached a model server. The window's clock is one the test opens (<see cref="WindowClock"/>), so "inside the
/// window" is certain and "after the window" needs no sleep; everything else runs on the system clock.
/// </summary>
public sealed class DebounceTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(7.25);

    private static async Task<(PolicyStack Stack, WindowClock Clock)> StartAsync(string scenario, ApiCase? api = null, string? onNewer = null)
    {
        var clock = new WindowClock(Window);
        var route = $"{scenario}-{Guid.NewGuid():N}";
        var metrics = new MetricRecorder(route);
        var stack = await Stack.StartAsync(configure: s =>
        {
            PolicySettings.Set(s, "Debounce", Window.ToString("c", System.Globalization.CultureInfo.InvariantCulture));
            if (onNewer is not null)
            {
                PolicySettings.Set(s, "OnNewer", onNewer);
            }
        }, routeId: route, builder: web => web.Services.AddSingleton<TimeProvider>(clock));
        return (new PolicyStack(stack, metrics), clock);
    }

    private static HttpRequestMessage Chat(string prompt, string session, int cap = 5, Dictionary<string, string>? headers = null) =>
        StreamReading.ChatRequest("/v1/chat/completions", prompt, session, maxTokens: cap, headers: headers);

    [Fact]
    public async Task TwoRequestsInsideTheWindow_FirstAnsweredSuperseded_OnlyTheSecondReachesTheModel()
    {
        var (stack, clock) = await StartAsync("debounce-two");
        await using var _ = stack;
        var firstRequest = Chat("first draft of the question", "d");
        var firstBytes = (await firstRequest.Content!.ReadAsByteArrayAsync()).LongLength;
        var first = StreamReading.SendAndReadAsync(stack.Client, firstRequest);
        await clock.WaitHeldAsync(1);

        var second = StreamReading.SendAndReadAsync(stack.Client, Chat("final question", "d"));
        var firstTranscript = await first.WaitAsync(Wait.Timeout); // answered as soon as the newer request claimed the key
        await clock.WaitHeldAsync(2);
        clock.OpenAll();
        var secondTranscript = await second.WaitAsync(Wait.Timeout);

        Assert.Equal(409, firstTranscript.StatusCode);
        Assert.Equal("superseded", PolicySettings.ErrorName("chat_completions", string.Join('\n', firstTranscript.Lines)));
        Assert.Equal("[DONE]", secondTranscript.DataEvents[^1]);
        var entry = Assert.Single(await stack.Stack.Ledger.WaitForAsync(l => l.Count >= 1 && l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.True(entry.Completed);
        Assert.Equal(5, entry.TokensSent);

        var debounced = await stack.Metrics.WaitForAsync("llm_gateway.debounce.requests");
        Assert.Equal(1, debounced.Value);
        Assert.Equal("chat_completions", debounced["api"]);
        Assert.Equal("mock-1", debounced["model"]);
        var saved = await stack.Metrics.WaitForAsync("llm_gateway.debounce.prompt_tokens_saved");
        Assert.Equal((firstBytes + 3) / 4, (long)saved.Value);
        var ended = await stack.Metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == "superseded");
        Assert.Equal(1, ended.Value);
    }

    [Fact]
    public async Task OneRequestAlone_WaitsForTheWindow_ThenGoesUpstream()
    {
        var (stack, clock) = await StartAsync("debounce-one");
        await using var _ = stack;
        var alone = StreamReading.SendAndReadAsync(stack.Client, Chat("only question", "o"));
        await clock.WaitHeldAsync(1);
        Assert.Empty(stack.Stack.Ledger.Snapshot()); // held: the model server has not seen it
        Assert.False(alone.IsCompleted);

        clock.OpenAll();
        var transcript = await alone.WaitAsync(Wait.Timeout);

        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        Assert.True(Assert.Single(await stack.Stack.Ledger.WaitForAsync(l => l.Count == 1 && l[0].EndedAt is not null, Wait.Timeout)).Completed);
        Assert.Empty(stack.Metrics.All("llm_gateway.debounce.requests"));
    }

    [Fact]
    public async Task OneRequestAlone_RealClock_GoesUpstreamAfterTheWindow()
    {
        var route = $"debounce-real-{Guid.NewGuid():N}";
        await using var stack = await Stack.StartAsync(configure: s => PolicySettings.Set(s, "Debounce", "00:00:00.050"), routeId: route);

        var transcript = await StreamReading.SendAndReadAsync(stack.Client, Chat("question", "rc"));

        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        Assert.True(Assert.Single(await stack.Ledger.WaitForAsync(l => l.Count == 1 && l[0].EndedAt is not null, Wait.Timeout)).Completed);
    }

    [Fact]
    public async Task ClientDropsDuringTheWindow_NothingGoesUpstream()
    {
        var (stack, clock) = await StartAsync("debounce-drop");
        await using var _ = stack;
        using var drop = new CancellationTokenSource();
        var dropped = StreamReading.SendAsync(stack.Client, Chat("never mind", "g"), drop.Token);
        await clock.WaitHeldAsync(1);

        await drop.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => dropped.WaitAsync(Wait.Timeout));
        var ended = await stack.Metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == "client_disconnected");
        clock.OpenAll(); // the dropped request's window, were it still waiting, would end now

        // A later request on another key goes through the same route to the model server: the ledger's only entry.
        var probe = StreamReading.SendAndReadAsync(stack.Client, Chat("probe", "p"));
        await clock.WaitHeldAsync(2);
        clock.OpenAll();
        Assert.Equal("[DONE]", (await probe.WaitAsync(Wait.Timeout)).DataEvents[^1]);
        var entry = Assert.Single(await stack.Stack.Ledger.WaitForAsync(l => l.Count >= 1 && l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.Equal("p", entry.SessionId);
        Assert.Equal(1, ended.Value);
        Assert.Empty(stack.Metrics.All("llm_gateway.debounce.requests"));
    }

    [Fact]
    public async Task StopDuringTheWindow_AnsweredStopped_NothingGoesUpstream()
    {
        var (stack, clock) = await StartAsync("debounce-stop");
        await using var _ = stack;
        var held = StreamReading.SendAndReadAsync(stack.Client, Chat("question", "st"));
        await clock.WaitHeldAsync(1);

        using var stop = await stack.Client.PostAsync("/v1/sessions/st/cancel", null);
        var transcript = await held.WaitAsync(Wait.Timeout);
        clock.OpenAll();

        Assert.Equal(200, (int)stop.StatusCode);
        Assert.Equal(409, transcript.StatusCode);
        Assert.Equal("stopped", PolicySettings.ErrorName("chat_completions", string.Join('\n', transcript.Lines)));
        await stack.Metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == "stopped");
        Assert.Empty(stack.Stack.Ledger.Snapshot());
    }

    /// <summary>Reject plus debounce: a request still in its window is no active stream, so a newer one replaces it
    /// (superseded, never upstream); once the newer one has left its window it is, and the next gets session_busy.</summary>
    [Fact]
    public async Task RejectWithDebounce_HeldRequestIsReplaced_ThenTheStreamUpstreamRejectsTheNext()
    {
        var (stack, clock) = await StartAsync("debounce-reject", onNewer: "reject");
        await using var _ = stack;
        var first = StreamReading.SendAndReadAsync(stack.Client, Chat("first draft", "rj"));
        await clock.WaitHeldAsync(1);
        var pending = StreamReading.SendAsync(stack.Client, Chat("final", "rj", cap: 40, headers: ApiStack.Slow));
        var firstTranscript = await first.WaitAsync(Wait.Timeout); // replaced in its window
        await clock.WaitHeldAsync(2);
        clock.OpenAll();
        using var second = await pending.WaitAsync(Wait.Timeout);
        await stack.Stack.WaitForEntryAsync("rj", e => e.TokensSent >= 2);

        using var third = await stack.Client.SendAsync(Chat("one more", "rj"));
        var thirdBody = await third.Content.ReadAsStringAsync();
        var secondTranscript = await StreamReading.ReadToEndAsync(second);

        Assert.Equal(409, firstTranscript.StatusCode);
        Assert.Equal("superseded", PolicySettings.ErrorName("chat_completions", string.Join('\n', firstTranscript.Lines)));
        Assert.Equal(409, (int)third.StatusCode);
        Assert.Equal("session_busy", PolicySettings.ErrorName("chat_completions", thirdBody));
        Assert.Equal(2, clock.Started); // the refused request never waited a window
        Assert.Equal("[DONE]", secondTranscript.DataEvents[^1]);
        var entry = Assert.Single(await stack.Stack.Ledger.WaitForAsync(l => l.Count >= 1 && l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.True(entry.Completed);
        Assert.Equal(40, entry.TokensSent);
        Assert.Equal(1, (await stack.Metrics.WaitForAsync("llm_gateway.debounce.requests")).Value);
        Assert.Equal(1, (await stack.Metrics.WaitForAsync("llm_gateway.sessions.busy_rejections")).Value);
    }
}
