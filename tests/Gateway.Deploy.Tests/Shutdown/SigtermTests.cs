using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Gateway.Deploy.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Deploy.Tests.Shutdown;

/// <summary>
/// The gateway as its own process, sent a real SIGTERM (what the kubelet sends): streams that outlive the
/// drain deadline, keyed or not, end with their API's shutdown event and a clean end; a short one
/// finishes; during the readiness delay <c>/readyz</c> answers 503 on a new connection while new
/// requests are still served.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class SigtermTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Sigterm_KeyedAndKeylessStreamsOutlivingTheDrain_EndWithTheirApisShutdownEvent_ShortOneFinishes()
    {
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 10 });
        await using var gateway = await GatewayProcess.StartAsync(Settings(mock, readinessDelay: "00:00:00", drainTimeout: "00:00:05"));
        using var http = Streaming.Client(gateway.BaseAddress);

        // Four that would run 50 s (both APIs, with and without a session key), one that needs 1.5 s:
        // a 5 s deadline leaves the short one room on a loaded machine and still cuts the long ones.
        var longOnes = new (string Path, string? Session)[]
        {
            ("/v1/chat/completions", null), ("/v1/chat/completions", "chat-keyed"), ("/v1/messages", null), ("/v1/messages", "messages-keyed"),
        };
        var responses = new List<HttpResponseMessage>();
        foreach (var (path, session) in longOnes)
        {
            responses.Add(await Streaming.SendAsync(http, path, session, maxTokens: 400, completionTokens: 1000));
        }

        using var shortResponse = await Streaming.SendAsync(http, "/v1/chat/completions", "short", maxTokens: 30, completionTokens: null);
        await mock.Ledger.WaitForAsync(l => l.Count(e => e.TokensSent >= 1) == 5, Timeout);

        var terminatedAt = DateTimeOffset.UtcNow;
        await gateway.TerminateAsync();
        var transcripts = await Task.WhenAll(responses.Select(Streaming.ReadToEndAsync));
        var shortTranscript = await Streaming.ReadToEndAsync(shortResponse);
        Assert.Equal(0, await gateway.WaitForExitAsync(Timeout));

        for (var i = 0; i < longOnes.Length; i++)
        {
            var (path, session) = longOnes[i];
            var t = transcripts[i];
            var what = $"{path} session {session ?? "(none)"}";
            Assert.True(t.ReadError is null, $"{what} ended with {t.ReadError}");
            Assert.True(t.Data.Count > 1, $"{what}: streamed nothing before the notice");
            using var last = JsonDocument.Parse(t.Data[^1]);
            if (path == "/v1/messages")
            {
                Assert.Equal("event: error", t.Lines.Last(l => l.StartsWith("event:", StringComparison.Ordinal)));
                Assert.Equal("error", last.RootElement.GetProperty("type").GetString());
            }

            Assert.Equal("gateway_shutdown", last.RootElement.GetProperty("error").GetProperty("type").GetString());
        }

        Assert.True(shortTranscript.ReadError is null, $"short stream ended with {shortTranscript.ReadError}");
        Assert.Equal("[DONE]", shortTranscript.Data[^1]);

        var ledger = await mock.Ledger.WaitForAsync(l => l.All(e => e.EndedAt is not null), Timeout);
        foreach (var (path, session) in longOnes)
        {
            Assert.True(ledger.Single(e => e.Path == path && e.SessionId == session).Cancelled, $"{path} {session}: upstream not cancelled");
        }

        var shortEntry = ledger.Single(e => e.SessionId == "short");
        Assert.True(shortEntry.Completed);
        Assert.True(shortEntry.EndedAt > terminatedAt, "the short stream ended before SIGTERM: it did not run during the drain");
        Assert.Contains("Drain deadline passed on shutdown; cancelled 4 active stream(s)", gateway.Output, StringComparison.Ordinal);

        foreach (var response in responses)
        {
            response.Dispose();
        }
    }

    [Fact]
    public async Task Sigterm_DuringTheReadinessDelay_ReadyzAnswers503OnANewConnectionAndNewRequestsAreServed()
    {
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 200, TimeToFirstTokenMs = 10 });
        var delay = TimeSpan.FromSeconds(8);
        await using var gateway = await GatewayProcess.StartAsync(Settings(mock, readinessDelay: "00:00:08", drainTimeout: "00:00:05"));
        using (var before = Streaming.Client(gateway.BaseAddress))
        using (var ready = await before.GetAsync(new Uri("readyz", UriKind.Relative)))
        {
            Assert.Equal(200, (int)ready.StatusCode);
        }

        var terminated = Stopwatch.StartNew();
        await gateway.TerminateAsync();
        await gateway.WaitForOutputAsync("SIGTERM received", Timeout);

        // New clients, so new connections: the listener still accepts.
        using (var probe = Streaming.Client(gateway.BaseAddress))
        using (var notReady = await probe.GetAsync(new Uri("readyz", UriKind.Relative)))
        {
            Assert.Equal(503, (int)notReady.StatusCode);
            Assert.Equal("stopping", await notReady.Content.ReadAsStringAsync());
        }

        using (var late = Streaming.Client(gateway.BaseAddress))
        using (var response = await Streaming.SendAsync(late, "/v1/chat/completions", "late", maxTokens: 5, completionTokens: null))
        {
            var transcript = await Streaming.ReadToEndAsync(response);
            Assert.True(transcript.ReadError is null, $"ended with {transcript.ReadError}");
            Assert.Equal("[DONE]", transcript.Data[^1]);
        }

        Assert.False(gateway.Output.Contains("Readiness delay over", StringComparison.Ordinal),
            "the delay ended before the requests made during it were answered; the machine is too slow for this test's delay");
        Assert.Equal(0, await gateway.WaitForExitAsync(Timeout));
        Assert.True(terminated.Elapsed >= delay, $"exited {terminated.Elapsed} after SIGTERM, before the {delay} readiness delay");
        Assert.True((await mock.Ledger.WaitForAsync(l => l.Count == 1, Timeout)).Single().Completed);
    }

    private static Dictionary<string, string> Settings(MockLlmServer mock, string readinessDelay, string drainTimeout) => new()
    {
        ["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString(),
        ["Gateway__Shutdown__ReadinessDelay"] = readinessDelay,
        ["Gateway__Shutdown__DrainTimeout"] = drainTimeout,
    };
}
