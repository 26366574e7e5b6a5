using System.Globalization;
using Gateway.Tests.Infrastructure;
using Microsoft.Playwright;
using MockLlm;
using static Microsoft.Playwright.Assertions;

namespace Gateway.Tests.Chat;

/// <summary>The chat page in headless Chromium against the gateway and the mock on real Kestrel:
/// what the person sees on the page and what the mock's ledger says was generated.</summary>
[Collection(ChromiumCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
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

        // The mock's ground truth. The page's fetch carries X-Session-Id; EventSource sends none, so
        // the mock knows those requests only by path.
        Func<LedgerEntry, bool> ours = mode == "fetch" ? e => e.SessionId == sessionId : e => e.Path == SsePath;
        await browser.Prompt.PressSequentiallyAsync(FirstPrompt);
        var firstWords = await browser.WaitForWordsAsync(3);
        var first = stack.Ledger.Snapshot().Last(ours);
        await browser.Prompt.PressSequentiallyAsync(FollowUp);

        // The stream on screen when the typing resumed was cut short, and the last request (for the
        // whole prompt) ran to its end. Usually exactly two requests reach the mock; a pause of over
        // 300 ms between two keystrokes on a loaded machine legitimately adds one, aborted at once.
        var ledger = await stack.Ledger.WaitForAsync(
            all => all.Where(ours).Last() is { Completed: true } last && last.Id != first.Id && all.Single(e => e.Id == first.Id).EndedAt is not null,
            Wait.Timeout);
        var entries = ledger.Where(ours).ToList();
        var seen = string.Join("; ", entries);
        var cut = entries.Single(e => e.Id == first.Id);
        Assert.True(cut.Cancelled, $"the first request was not cancelled: {seen}");
        Assert.True(cut.TokensSent < cut.TokensPlanned, $"the first request was not cut short: {seen}");
        Assert.All(entries.SkipLast(1), e => Assert.True(e.Cancelled, $"an earlier request was not cancelled: {seen}"));
        Assert.True(entries.Count < FirstPrompt.Length, $"the debounce did not coalesce keystrokes: {seen}");

        // Only the last answer is on the page, whole.
        await Expect(browser.Answer).ToHaveAttributeAsync("data-state", "done");
        // Every request of the page is a turn; a request superseded before it went upstream (it waited for the
        // one before it to close, and the next keystroke came first) is a turn the mock never saw.
        var turns = int.Parse((await browser.Answer.GetAttributeAsync("data-turn"))!, CultureInfo.InvariantCulture);
        Assert.InRange(turns, entries.Count, FirstPrompt.Length + FollowUp.Length - 1); // still coalesced
        Assert.Equal(await ExpectedAnswerAsync(stack, FirstPrompt + FollowUp), (await browser.Answer.TextContentAsync())!.Trim());
        Assert.DoesNotContain(firstWords, await browser.Page.Locator("body").InnerTextAsync(), StringComparison.Ordinal);
        await Expect(browser.Page.Locator("#history li")).ToHaveCountAsync(turns - 1);
        await Expect(browser.Page.Locator("#history li").Last).ToHaveAttributeAsync("data-kind", "interrupted");

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

        await browser.Prompt.FillAsync(FirstPrompt); // one input event: one request
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

        await first.Prompt.FillAsync(FirstPrompt);
        await first.WaitForWordsAsync(3);
        await second.Prompt.FillAsync("a different question");

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
    internal static async Task<string> ExpectedAnswerAsync(Stack stack, string prompt)
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
