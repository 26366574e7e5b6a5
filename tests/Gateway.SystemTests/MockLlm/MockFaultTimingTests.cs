using System.Diagnostics;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.MockLlm;

/// <summary>
/// <c>X-Mock-Fail-After</c> is a mid-stream reset: the tokens the mock sent before it reach the client.
/// Kestrel's flush only hands bytes to its socket loop and an abort drops what that loop has not sent, so a
/// reset folded onto the last flush, as when a paused process catches up its token schedule, used to take the
/// tokens (or the response headers) with it; the gateway then saw "no response" instead of "reset mid-stream".
/// The mock runs as its own process here so the test can pause it across its schedule (SIGSTOP), as a long
/// garbage collection or a busy CI machine does.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class MockFaultTimingTests
{
    [Fact]
    public async Task FailAfter_MockPausedPastItsSchedule_TheTokensSentStillReachTheClientBeforeTheReset()
    {
        var (mock, baseAddress) = await DotnetProcess.StartListeningAsync("MockLlm.dll", Wait.Timeout, start =>
            start.Environment["Logging__LogLevel__MockLlm.Generation"] = "Debug"); // "Generation … started"
        await using var _ = mock;
        using var client = StreamReading.NewClient(baseAddress);

        // The race is lost only some of the time (a quarter of the rounds with the old mock here), so the test
        // runs several rounds on one mock process and reports every round.
        var rounds = new List<string>();
        for (var round = 0; round < Rounds; round++)
        {
            rounds.Add(await PausedRoundAsync(mock, client, round));
        }

        Assert.True(rounds.All(r => r.StartsWith("3 tokens, reset, status 200, [DONE] False", StringComparison.Ordinal)), string.Join('\n', rounds));
        await mock.WaitForOutputAsync("aborting the connection after 3 tokens", Wait.Timeout, times: Rounds);
    }

    private const int Rounds = 8;

    /// <summary>One request with <c>X-Mock-Fail-After: 3</c>, the mock frozen across its schedule; what the client read.</summary>
    private static async Task<string> PausedRoundAsync(DotnetProcess mock, HttpClient client, int round)
    {
        // The first token (and the response headers with it) 300 ms in, then one every 50 ms: the third is due 400 ms in.
        var sent = Stopwatch.StartNew();
        var sending = StreamReading.SendAsync(client, StreamReading.ChatRequest("/v1/chat/completions", "hi", null, maxTokens: 50,
            headers: new Dictionary<string, string>
            {
                ["X-Mock-Ttft-Ms"] = "300",
                ["X-Mock-Tokens-Per-Second"] = "20",
                ["X-Mock-Fail-After"] = "3",
            }));
        await mock.WaitForOutputAsync("started on /v1/chat/completions", Wait.Timeout, times: round + 1);

        // The fault under test: the mock is frozen until its whole schedule, fault included, is past due.
        await ProcessSignals.PauseAsync(mock.Id, Wait.Timeout);
        var pausedAt = sent.Elapsed;
        try
        {
            var pastDue = TimeSpan.FromMilliseconds(700) - sent.Elapsed;
            if (pastDue > TimeSpan.Zero)
            {
                await Task.Delay(pastDue); // the pause's length is the scenario, not a synchronisation
            }
        }
        finally
        {
            ProcessSignals.Resume(mock.Id);
        }

        HttpResponseMessage response;
        try
        {
            response = await sending;
        }
        catch (HttpRequestException e)
        {
            return $"no response ({e.Message}), paused {pausedAt.TotalMilliseconds:F0} ms in";
        }

        using (response)
        {
            var transcript = await StreamReading.ReadToEndAsync(response);
            var tokens = transcript.DataEvents.Count(d => d.Contains("\"content\":\"", StringComparison.Ordinal) && !d.Contains("\"content\":\"\"", StringComparison.Ordinal));
            var end = transcript.ReadError is null ? "clean end" : "reset";
            return $"{tokens} tokens, {end}, status {(int)response.StatusCode}, [DONE] {transcript.DataEvents.Contains("[DONE]")}, paused {pausedAt.TotalMilliseconds:F0} ms in";
        }
    }
}
