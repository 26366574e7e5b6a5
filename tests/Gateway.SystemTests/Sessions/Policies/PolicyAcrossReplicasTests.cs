using System.Globalization;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Sessions.Policies;

/// <summary>
/// The session policies across two gateway replicas sharing a real redis-server, in front of one mock: a stream
/// active on one replica makes a newer request on the other get 409 <c>session_busy</c> (reject), and a request
/// held in its debounce window on one replica is replaced by a newer one on the other before any model sees it.
/// </summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class PolicyAcrossReplicasTests
{
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(6.75);

    /// <summary>Shared by both replicas: the test waits for windows started on either.</summary>
    private readonly WindowClock _clock = new(Window);

    private Task<Replicas> StartAsync(string onNewer, bool debounce)
    {
        var prefix = $"pol{Guid.NewGuid():N}";
        return Replicas.StartAsync(prefix, prefix, configure: s =>
        {
            PolicySettings.Set(s, "OnNewer", onNewer);
            if (debounce)
            {
                PolicySettings.Set(s, "Debounce", Window.ToString("c", CultureInfo.InvariantCulture));
            }
        }, builder: web => web.Services.AddSingleton<TimeProvider>(_clock));
    }

    private static HttpRequestMessage Chat(string prompt, string session, int cap, bool slow = false) =>
        StreamReading.ChatRequest("/v1/chat/completions", prompt, session, maxTokens: cap,
            headers: slow ? new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" } : null);

    [Fact]
    public async Task Reject_StreamActiveOnA_NewerRequestOnB_Gets409SessionBusy_AStreamCompletes_ThenBIsAccepted()
    {
        await using var pair = await StartAsync("reject", debounce: false);
        using var first = await StreamReading.SendAsync(pair.A.Client, Chat("long story", "x", 40, slow: true));
        await Wait.ForEntryAsync(pair.Mock.Ledger, "x", e => e.TokensSent >= 2, 0);

        using var newer = await pair.B.Client.SendAsync(Chat("another", "x", 5));
        var body = await newer.Content.ReadAsStringAsync();
        var firstTranscript = await StreamReading.ReadToEndAsync(first);

        Assert.Equal(409, (int)newer.StatusCode);
        Assert.Equal("session_busy", PolicySettings.ErrorName("chat_completions", body));
        Assert.Equal("[DONE]", firstTranscript.DataEvents[^1]);
        var entry = await Wait.ForEntryAsync(pair.Mock.Ledger, "x", e => e.EndedAt is not null, 0);
        Assert.True(entry.Completed);
        Assert.Equal(40, entry.TokensSent);
        Assert.Single(pair.Mock.Ledger.Snapshot());

        var after = await StreamReading.SendAndReadAsync(pair.B.Client, Chat("after", "x", 5));
        Assert.Equal(200, after.StatusCode);
        Assert.Equal("[DONE]", after.DataEvents[^1]);
        Assert.Equal(2, pair.Mock.Ledger.Snapshot().Count);
    }

    [Fact]
    public async Task Debounce_HeldOnA_NewerOnBInsideTheWindow_AIsSuperseded_OnlyBReachesTheModel()
    {
        await using var pair = await StartAsync("supersede", debounce: true);
        var first = StreamReading.SendAndReadAsync(pair.A.Client, Chat("first draft", "d", 5));
        await _clock.WaitHeldAsync(1);

        var second = StreamReading.SendAndReadAsync(pair.B.Client, Chat("final", "d", 5));
        var firstTranscript = await first.WaitAsync(Wait.Timeout);
        await _clock.WaitHeldAsync(2);
        _clock.OpenAll();
        var secondTranscript = await second.WaitAsync(Wait.Timeout);

        Assert.Equal(409, firstTranscript.StatusCode);
        Assert.Equal("superseded", PolicySettings.ErrorName("chat_completions", string.Join('\n', firstTranscript.Lines)));
        Assert.Equal("[DONE]", secondTranscript.DataEvents[^1]);
        var entry = Assert.Single(await pair.Mock.Ledger.WaitForAsync(l => l.Count >= 1 && l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.True(entry.Completed);
    }

    [Fact]
    public async Task RejectWithDebounce_HeldOnA_ReplacedFromB_ThenBsStreamUpstreamRejectsTheNextOnA()
    {
        await using var pair = await StartAsync("reject", debounce: true);
        var first = StreamReading.SendAndReadAsync(pair.A.Client, Chat("first draft", "h", 5));
        await _clock.WaitHeldAsync(1);

        var pending = StreamReading.SendAsync(pair.B.Client, Chat("final", "h", 40, slow: true));
        var firstTranscript = await first.WaitAsync(Wait.Timeout);
        await _clock.WaitHeldAsync(2);
        _clock.OpenAll();
        using var second = await pending.WaitAsync(Wait.Timeout);
        await Wait.ForEntryAsync(pair.Mock.Ledger, "h", e => e.TokensSent >= 2, 0);

        using var third = await pair.A.Client.SendAsync(Chat("one more", "h", 5));
        var thirdBody = await third.Content.ReadAsStringAsync();
        var secondTranscript = await StreamReading.ReadToEndAsync(second);

        Assert.Equal(409, firstTranscript.StatusCode);
        Assert.Equal("superseded", PolicySettings.ErrorName("chat_completions", string.Join('\n', firstTranscript.Lines)));
        Assert.Equal(409, (int)third.StatusCode);
        Assert.Equal("session_busy", PolicySettings.ErrorName("chat_completions", thirdBody));
        Assert.Equal("[DONE]", secondTranscript.DataEvents[^1]);
        var entry = Assert.Single(await pair.Mock.Ledger.WaitForAsync(l => l.Count >= 1 && l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.True(entry.Completed);
        Assert.Equal(40, entry.TokensSent);
    }
}
