using System.Globalization;
using Gateway.Tests.Infrastructure;
using Microsoft.Playwright;
using MockLlm;
using static Microsoft.Playwright.Assertions;

namespace Gateway.Tests.Chat;

/// <summary>The chat page in headless Chromium against the gateway and the mock on real Kestrel:
/// what the person sees on the page and what the mock's ledger says was generated.</summary>
[Collection(ChromiumCollection.Name)]
public sealed class ChatPageTests(Chromium chromium)
{
    private const string FirstPrompt = "tell me a long story";
    private const string FollowUp = ", in verse";
    private const string SsePath = "/api/sse-stream";

    // Slow enough that the second keystrokes land mid-stream (3 s per answer), short enough that the
    // second answer finishes soon. Set on the mock because EventSource cannot send X-Mock-* headers.
    private static readonly MockLlmOptions s_slowModel = new() { TokensPerSecond = 20, TimeToFirstTokenMs = 50, DefaultCompletionTokens = 60 };

    private static Task<Stack> StartAsync() => Stack.StartAsync(s_slowModel, settings => settings["Gateway:Chat:Enabled"] = "true");

    [Fact]
    public Task FetchMode_TypingAgainMidStream_CancelsFirstRequestAndShowsOnlySecondAnswer() => TypingAgainMidStreamAsync("fetch");

    [Fact]
    public Task SseMode_TypingAgainMidStream_CancelsFirstRequestAndShowsOnlySecondAnswer() => TypingAgainMidStreamAsync("sse");

    private async Task TypingAgainMidStreamAsync(string mode)
    {
        await using var stack = await StartAsync();
        await using var browser = await ChatBrowser.OpenAsync(chromium, stack.Gateway.BaseAddress, $"{mode}-typing-again");
        var sessionId = await browser.LoadAsync();
        await browser.Page.Locator($"#mode-{mode}").CheckAsync();

        await browser.Prompt.PressSequentiallyAsync(FirstPrompt);
        var firstWords = await browser.WaitForWordsAsync(3);
        await browser.Prompt.PressSequentiallyAsync(FollowUp);

        // The mock's ground truth: the first generation was cut short, and the debounce let exactly
        // one more request through. The page's fetch carries X-Session-Id; EventSource sends none,
        // so the mock knows those requests only by path.
        Func<LedgerEntry, bool> ours = mode == "fetch" ? e => e.SessionId == sessionId : e => e.Path == SsePath;
        var ledger = await stack.Ledger.WaitForAsync(all => all.Where(ours).Count(e => e.EndedAt is not null) >= 2, Wait.Timeout);
        var entries = ledger.Where(ours).ToList();
        Assert.Equal(2, entries.Count);
        Assert.True(entries[0].Cancelled, "the first request was not cancelled");
        Assert.True(entries[0].TokensSent < entries[0].TokensPlanned, $"first request sent {entries[0].TokensSent} of {entries[0].TokensPlanned}");
        Assert.True(entries[1].Completed, "the second request did not complete");

        // Only the second answer is on the page, whole.
        await Expect(browser.Answer).ToHaveAttributeAsync("data-state", "done");
        await Expect(browser.Answer).ToHaveAttributeAsync("data-turn", "2");
        Assert.Equal(await ExpectedAnswerAsync(stack, FirstPrompt + FollowUp), (await browser.Answer.TextContentAsync())!.Trim());
        Assert.DoesNotContain(firstWords, await browser.Page.Locator("body").InnerTextAsync(), StringComparison.Ordinal);
        await Expect(browser.Page.Locator("#history li")).ToHaveCountAsync(1);
        await Expect(browser.Page.Locator("#history li")).ToHaveAttributeAsync("data-kind", "interrupted");

        // The live counter: the gateway's estimate for this session, polled by the page.
        await Expect(browser.Saved).Not.ToHaveTextAsync("0");
        Assert.True(long.Parse(await browser.Saved.InnerTextAsync(), CultureInfo.InvariantCulture) > 0);
        Assert.Empty(browser.Errors);
    }

    [Fact]
    public async Task FetchMode_StopButton_EndsStreamAndShowsStoppedMarker()
    {
        await using var stack = await StartAsync();
        await using var browser = await ChatBrowser.OpenAsync(chromium, stack.Gateway.BaseAddress, "fetch-stop");
        var sessionId = await browser.LoadAsync();

        await browser.Prompt.PressSequentiallyAsync(FirstPrompt);
        await browser.WaitForWordsAsync(3);
        await browser.Stop.ClickAsync();

        var entry = await stack.WaitForEntryAsync(sessionId, e => e.EndedAt is not null);
        Assert.True(entry.Cancelled, "the stopped request was not cancelled");
        Assert.True(entry.TokensSent < entry.TokensPlanned, $"stopped request sent {entry.TokensSent} of {entry.TokensPlanned}");
        await Expect(browser.Marker).ToBeVisibleAsync();
        await Expect(browser.Marker).ToHaveAttributeAsync("data-kind", "stopped");
        // The gateway ended the stream itself (explicit stop), not the page's fallback abort.
        await Expect(browser.Marker).ToHaveAttributeAsync("data-type", "request_stopped");
        await Expect(browser.Answer).ToHaveAttributeAsync("data-state", "stopped");
        await Expect(browser.Stop).ToBeDisabledAsync();
        await Expect(browser.Saved).Not.ToHaveTextAsync("0");
        Assert.Single(stack.Ledger.Snapshot(), e => e.SessionId == sessionId);
        Assert.Empty(browser.Errors);
    }

    [Fact]
    public async Task FetchMode_SameSessionInAnotherTab_FirstTabShowsSupersededMarker()
    {
        await using var stack = await StartAsync();
        await using var first = await ChatBrowser.OpenAsync(chromium, stack.Gateway.BaseAddress, "fetch-superseded-first-tab");
        await using var second = await ChatBrowser.OpenAsync(chromium, stack.Gateway.BaseAddress, "fetch-superseded-second-tab");
        var sessionId = await first.LoadAsync();
        await second.LoadAsync("?session=" + Uri.EscapeDataString(sessionId));

        await first.Prompt.PressSequentiallyAsync(FirstPrompt);
        await first.WaitForWordsAsync(3);
        await second.Prompt.PressSequentiallyAsync("a different question");

        // The first tab never aborted: the gateway superseded its stream and told it why.
        await Expect(first.Marker).ToHaveAttributeAsync("data-kind", "superseded");
        await Expect(first.Marker).ToHaveAttributeAsync("data-type", "request_superseded");
        await Expect(first.Marker).ToBeVisibleAsync();
        var superseded = await stack.WaitForEntryAsync(sessionId, e => e.EndedAt is not null);
        Assert.True(superseded.Cancelled);
        Assert.True(superseded.TokensSent < superseded.TokensPlanned);
        await Expect(second.Answer).ToHaveAttributeAsync("data-state", "done");
        Assert.Equal(await ExpectedAnswerAsync(stack, "a different question"), (await second.Answer.TextContentAsync())!.Trim());
        await Expect(first.Saved).Not.ToHaveTextAsync("0");
        Assert.Empty(first.Errors);
        Assert.Empty(second.Errors);
    }

    /// <summary>The mock's whole answer to <paramref name="prompt"/> (deterministic per prompt), asked directly and fast.</summary>
    private static async Task<string> ExpectedAnswerAsync(Stack stack, string prompt)
    {
        using var client = new HttpClient { BaseAddress = stack.Mock.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/fetch-stream?query=" + Uri.EscapeDataString(prompt));
        request.Headers.Add("X-Mock-Tokens-Per-Second", "10000");
        request.Headers.Add("X-Mock-Ttft-Ms", "0");
        using var response = await client.SendAsync(request);
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadAsStringAsync()).Trim();
    }
}
