using Gateway.Tests.Chat;
using Gateway.Tests.Infrastructure;
using MockLlm;
using static Microsoft.Playwright.Assertions;

namespace Gateway.Tests.Resume;

/// <summary>
/// A network blip under a browser: headless Chromium reaches the gateway through a loopback TCP relay, which the
/// test resets mid-answer. On a resumable route the page's <c>EventSource</c> reconnects by itself and its fetch
/// reader asks again, both with <c>Last-Event-ID</c>; the page shows the whole answer once, and the mock's ledger
/// holds one request, generated whole and never cancelled.
/// </summary>
[Collection(ChromiumCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class ResumeBrowserTests(Chromium chromium)
{
    private const string Prompt = "tell me a long story";
    private const string SsePath = "/api/sse-stream";

    // Three seconds an answer: the cut lands mid-answer, and EventSource's own reconnect delay (3 s in Chromium)
    // falls within the route's window.
    private static readonly MockLlmOptions s_model = new() { TokensPerSecond = 20, TimeToFirstTokenMs = 50, DefaultCompletionTokens = 60 };

    [Theory]
    [InlineData("fetch")]
    [InlineData("sse")]
    public async Task ConnectionResetMidAnswer_PageResumes_ShowsTheWholeAnswerOnce_OneRequestGenerated(string mode)
    {
        await using var stack = await Stack.StartAsync(s_model, settings =>
        {
            settings["Gateway:Chat:Enabled"] = "true";
            settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.Resume"] = "00:00:30";
        });
        await using var relay = new TcpRelay(stack.Gateway.BaseAddress);
        await using var browser = await ChatBrowser.OpenAsync(chromium, relay.BaseAddress, $"{mode}-resume");
        var sessionId = await browser.LoadAsync();
        await browser.Page.Locator($"#mode-{mode}").CheckAsync();
        Func<LedgerEntry, bool> ours = mode == "fetch" ? e => e.SessionId == sessionId : e => e.Path == SsePath;

        await browser.Prompt.FillAsync(Prompt); // one input event: one request
        await browser.WaitForWordsAsync(3);
        Assert.True(relay.CutAll() > 0, "the relay had the page's connections to cut");

        await Expect(browser.Answer).ToHaveAttributeAsync("data-state", "done");
        await Expect(browser.Page.Locator("#resumed")).ToBeVisibleAsync();
        Assert.Equal(await ChatPageTests.ExpectedAnswerAsync(stack, Prompt), (await browser.Answer.TextContentAsync())!.Trim());
        var ledger = await stack.Ledger.WaitForAsync(all => all.Any(e => ours(e) && e.EndedAt is not null), Wait.Timeout);
        var entry = Assert.Single(ledger, e => ours(e));
        Assert.True(entry is { Completed: true, Cancelled: false }, $"completed {entry.Completed}, cancelled {entry.Cancelled}");
        // The browser logs the reset itself (net::ERR_…); anything else is the page's fault.
        Assert.DoesNotContain(browser.Errors, e => !e.Contains("net::", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TypingAgainOnAResumableRoute_StillStopsTheFirstAnswerAtOnce()
    {
        await using var stack = await Stack.StartAsync(s_model, settings =>
        {
            settings["Gateway:Chat:Enabled"] = "true";
            settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.Resume"] = "00:05:00";
        });
        await using var browser = await ChatBrowser.OpenAsync(chromium, stack.Gateway.BaseAddress, "fetch-resumable-typing");
        var sessionId = await browser.LoadAsync();

        await browser.Prompt.FillAsync(Prompt);
        await browser.WaitForWordsAsync(3);
        var first = stack.Ledger.Snapshot().Single(e => e.SessionId == sessionId);
        await browser.Prompt.FillAsync(Prompt + ", in verse");

        // Not detached for the five-minute window: the page stopped it, and the next answer ran whole.
        var cut = await stack.WaitForEntryAsync(sessionId, e => e.Id == first.Id && e.EndedAt is not null);
        Assert.True(cut.Cancelled);
        Assert.True(cut.TokensSent < cut.TokensPlanned);
        await Expect(browser.Answer).ToHaveAttributeAsync("data-state", "done");
        Assert.Equal(await ChatPageTests.ExpectedAnswerAsync(stack, Prompt + ", in verse"), (await browser.Answer.TextContentAsync())!.Trim());
        Assert.Empty(browser.Errors);
    }
}
