using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;
using MockLlm;

namespace Gateway.Tests.MockLlm;

/// <summary>
/// The mock's token schedule on a fake clock: a timer's ordinary lateness is absorbed by the absolute schedule;
/// after a stall (the process held up by a long collection or a busy machine) the tokens that fell due meanwhile
/// come at four times the model's pace until the schedule is met again, not in one burst. A burst written as a client's
/// abort arrives was counted by the ledger as sent although nobody could read it (CI, 2026-12-07: a detached
/// stream's 33 tokens, the usage record's cut streams).
/// </summary>
public sealed class MockPacingTests
{
    [Fact]
    public async Task LateByHalfAnInterval_KeepsTheSchedule_StalledPastIt_TheOverdueTokensComeAQuarterIntervalApart()
    {
        var start = new DateTimeOffset(2026, 12, 7, 12, 0, 0, TimeSpan.Zero);
        var clock = new FakeTimeProvider(start);
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 10, TimeToFirstTokenMs = 100 }, clock);
        using var client = StreamReading.NewClient(mock.BaseAddress);

        // Due at 100, 200, 300, 400 and 500 ms. The response's headers come with the first token, on the fake clock.
        var sending = StreamReading.SendAsync(client, StreamReading.ChatRequest("/v1/chat/completions", "hi", "pace", maxTokens: 50,
            headers: new Dictionary<string, string> { ["X-Mock-Completion-Tokens"] = "5" }));
        await TokensSentAsync(mock, 0);

        clock.Advance(TimeSpan.FromMilliseconds(100));
        await TokensSentAsync(mock, 1);

        // Half an interval late: the third token is still due at 300 ms.
        clock.Advance(TimeSpan.FromMilliseconds(150));
        await TokensSentAsync(mock, 2);
        clock.Advance(TimeSpan.FromMilliseconds(50));
        await TokensSentAsync(mock, 3);

        // Held up for 900 ms past the fourth token's time: it comes now, the fifth (overdue too) a quarter interval later.
        clock.Advance(TimeSpan.FromMilliseconds(1000));
        await TokensSentAsync(mock, 4);
        clock.Advance(TimeSpan.FromMilliseconds(25));
        var entry = (await mock.Ledger.WaitForAsync(l => l.Single().EndedAt is not null, Wait.Timeout).WaitAsync(Wait.Timeout)).Single();

        Assert.True(entry.Completed);
        Assert.Equal(5, entry.TokensSent);
        Assert.Equal(TimeSpan.FromMilliseconds(1325), entry.EndedAt - entry.StartedAt);
        using var response = await sending.WaitAsync(Wait.Timeout);
        var transcript = await StreamReading.ReadToEndAsync(response);
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
    }

    /// <summary>Waits (on the real clock: the ledger's own deadline runs on the fake one) until the mock has sent exactly
    /// <paramref name="tokens"/> tokens and is waiting for the next one's time.</summary>
    private static async Task TokensSentAsync(MockLlmServer mock, int tokens)
    {
        var entries = await mock.Ledger.WaitForAsync(l => l.Count == 1 && l[0].TokensSent >= tokens, Wait.Timeout).WaitAsync(Wait.Timeout);
        Assert.Equal(tokens, entries[0].TokensSent);
    }
}
