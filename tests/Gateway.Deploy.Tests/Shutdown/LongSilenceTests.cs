using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Gateway.Deploy.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Deploy.Tests.Shutdown;

/// <summary>
/// The shipped configuration, as the process runs it (its appsettings.json, no timeout set by the test), waits out a
/// model server that is silent for longer than YARP's 100 s default: a non-streaming answer that comes after 110 s,
/// and a stream that pauses 110 s between two tokens. Every layer is in the path: Kestrel toward the client, the
/// forwarder's client and its activity timeout toward the mock.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class LongSilenceTests
{
    private static readonly TimeSpan Silence = TimeSpan.FromSeconds(110);

    [Fact]
    public async Task ShippedSettings_ModelSilentFor110Seconds_BeforeTheAnswerAndMidStream_BothArriveWhole()
    {
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 10 });
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString(),
        });
        using var http = new HttpClient { BaseAddress = gateway.BaseAddress, Timeout = Silence + TimeSpan.FromMinutes(2) };
        var clock = Stopwatch.StartNew();

        var whole = SendAsync(http, stream: false, "X-Mock-Ttft-Ms", ((int)Silence.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture));
        var paused = SendAsync(http, stream: true, "X-Mock-Pause", $"3:{(int)Silence.TotalMilliseconds}");
        var (wholeStatus, wholeBody) = await whole;
        var (pausedStatus, pausedBody) = await paused;

        Assert.True(wholeStatus == 200, $"the non-streaming answer got {wholeStatus} after {clock.Elapsed}: {wholeBody}");
        Assert.True(clock.Elapsed >= Silence, $"answered after {clock.Elapsed}: the mock was not silent for {Silence}");
        using (var answer = JsonDocument.Parse(wholeBody))
        {
            // The whole answer: max_tokens (6) reached, every token of it in the message.
            Assert.Equal("length", answer.RootElement.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
            Assert.Equal(6, answer.RootElement.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        }

        Assert.Equal(200, pausedStatus);
        Assert.EndsWith("data: [DONE]", pausedBody.TrimEnd(), StringComparison.Ordinal);
        Assert.DoesNotContain("\"error\"", pausedBody, StringComparison.Ordinal);
        var ledger = await mock.Ledger.WaitForAsync(l => l.Count == 2 && l.All(e => e.EndedAt is not null), Streaming.Timeout);
        Assert.All(ledger, e => Assert.True(e.Completed, $"{e.Path} stream={e.Stream}: not completed"));
    }

    private static async Task<(int Status, string Body)> SendAsync(HttpClient http, bool stream, string header, string value)
    {
        var body = JsonSerializer.Serialize(new
        {
            model = "mock-1",
            stream,
            max_tokens = 6,
            messages = new[] { new { role = "user", content = "think for a long time" } },
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add(header, value);
        using var response = await http.SendAsync(request);
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }
}
