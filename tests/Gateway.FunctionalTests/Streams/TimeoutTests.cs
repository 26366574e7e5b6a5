using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Streams;

/// <summary>
/// Timeouts sized for LLM work: with the shipped defaults a long silence passes; with short configured
/// ones each boundary (the first byte, a pause mid-stream) ends in the client's own API shape, the upstream
/// request is aborted (the mock's ledger), and the end is counted with outcome <c>timeout</c>.
/// </summary>
public sealed class TimeoutTests
{
    private const string ShortActivity = "00:00:00.400";

    public static TheoryData<string> Apis => new() { "/v1/chat/completions", "/v1/messages", "/api/chat" };

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task SilentBeforeTheFirstByte_504InTheApisShape_UpstreamAborted_CountedAsTimeout(string path)
    {
        var run = await SilentAsync("first", path, maxTokens: 5, "X-Mock-Ttft-Ms", "60000");

        Assert.Equal(504, run.Transcript.StatusCode);
        Assert.Equal("application/json", run.Transcript.ContentType);
        AssertTimeoutError(path, JsonDocument.Parse(string.Join('\n', run.Transcript.Lines)).RootElement);
        Assert.Equal(0, run.Entry.TokensSent);
    }

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task SilentMidStream_TimeoutErrorEventThenCleanEnd_UpstreamAborted_CountedAsTimeout(string path)
    {
        var run = await SilentAsync("mid", path, maxTokens: 20, "X-Mock-Pause", "3:60000");

        Assert.Equal(200, run.Transcript.StatusCode);
        Assert.True(run.Transcript.EndedCleanly, $"ended with {run.Transcript.ReadError}");
        var last = path.StartsWith("/api/", StringComparison.Ordinal)
            ? JsonDocument.Parse(run.Transcript.Lines[^1]).RootElement
            : JsonDocument.Parse(run.Transcript.DataEvents[^1]).RootElement;
        AssertTimeoutError(path, last);
        Assert.DoesNotContain("[DONE]", run.Transcript.DataEvents);
        Assert.Equal(3, run.Entry.TokensSent);
        Assert.Equal(3, run.TokensStreamed);
    }

    private sealed record SilentRun(StreamTranscript Transcript, global::MockLlm.Recording.LedgerEntry Entry, double TokensStreamed);

    /// <summary>One request to a model server silent where <paramref name="header"/> says, through a gateway whose
    /// cluster waits <see cref="ShortActivity"/>: what the client read, and the upstream aborted and counted as a timeout.</summary>
    private static async Task<SilentRun> SilentAsync(string boundary, string path, int maxTokens, string header, string value)
    {
        var route = $"timeout-{boundary}-" + path.Replace('/', '-');
        using var metrics = new MetricRecorder(route);
        await using var stack = await Stack.StartAsync(routeId: route,
            configure: s => s["ReverseProxy:Clusters:llm:HttpRequest:ActivityTimeout"] = ShortActivity);
        var session = boundary + "-" + path;

        var transcript = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest(path, "hi", session, maxTokens: maxTokens,
            headers: new Dictionary<string, string> { [header] = value }));

        var entry = await stack.WaitForEntryAsync(session, e => e.EndedAt is not null);
        Assert.True(entry.Cancelled, "the upstream request was not aborted");
        var ended = await metrics.WaitForAsync("llm_gateway.streams.ended");
        Assert.Equal("timeout", ended["outcome"]);
        Assert.Equal(0, stack.Gateway.Registry.Count);
        return new SilentRun(transcript, entry, metrics.All("llm_gateway.tokens.streamed").Sum(m => m.Value));
    }

    [Fact]
    public async Task PausesShorterThanTheActivityTimeout_PassWhole()
    {
        await using var stack = await Stack.StartAsync(
            configure: s => s["ReverseProxy:Clusters:llm:HttpRequest:ActivityTimeout"] = "00:00:05");

        // Silent for 0.6 s before the first token and again mid-stream: longer than the short timeouts above.
        var transcript = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "hi", "pauses", maxTokens: 8,
            headers: new Dictionary<string, string> { ["X-Mock-Ttft-Ms"] = "600", ["X-Mock-Pause"] = "4:600" }));

        Assert.Equal(200, transcript.StatusCode);
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        var entry = await stack.WaitForEntryAsync("pauses", e => e.EndedAt is not null);
        Assert.True(entry.Completed);
        Assert.Equal(8, entry.TokensSent);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task RouteTimeoutPolicy_BoundsTheWholeRequest_InTheApisShape(bool beforeTheFirstByte)
    {
        // YARP's own route setting (ASP.NET Core request timeouts): a total bound, unlike the cluster's idle one.
        await using var stack = await Stack.StartAsync(configure: s => s["ReverseProxy:Routes:llm:Timeout"] = "00:00:00.800");
        var session = "route-timeout-" + beforeTheFirstByte;
        var headers = beforeTheFirstByte
            ? new Dictionary<string, string> { ["X-Mock-Ttft-Ms"] = "60000" }
            : new Dictionary<string, string> { ["X-Mock-Pause"] = "2:60000" };

        var transcript = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "hi", session, maxTokens: 20, headers: headers));

        Assert.True(transcript.EndedCleanly, $"ended with {transcript.ReadError}");
        Assert.Equal(beforeTheFirstByte ? 504 : 200, transcript.StatusCode);
        var error = beforeTheFirstByte
            ? JsonDocument.Parse(string.Join('\n', transcript.Lines)).RootElement
            : JsonDocument.Parse(transcript.DataEvents[^1]).RootElement;
        AssertTimeoutError("/v1/chat/completions", error);
        var entry = await stack.WaitForEntryAsync(session, e => e.EndedAt is not null);
        Assert.True(entry.Cancelled, "the upstream request was not aborted");
        Assert.Equal(beforeTheFirstByte ? 0 : 2, entry.TokensSent);
    }

    [Fact]
    public async Task ClientDropsWhileTheModelIsStillSilent_UpstreamAbortedAtOnce()
    {
        await using var stack = await Stack.StartAsync();
        using var client = StreamReading.NewClient(stack.Gateway.BaseAddress);
        var request = StreamReading.ChatRequest("/v1/chat/completions", "think hard", "silent-drop", maxTokens: 50,
            headers: new Dictionary<string, string> { ["X-Mock-Ttft-Ms"] = "600000" });
        using var gone = new CancellationTokenSource();
        var sending = StreamReading.SendAsync(client, request, gone.Token);
        await stack.WaitForEntryAsync("silent-drop", e => e.EndedAt is null); // queued or thinking: no byte yet

        gone.Cancel(); // the tab is closed before the first token
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sending);

        var ended = await stack.WaitForEntryAsync("silent-drop", e => e.EndedAt is not null);
        Assert.True(ended.Cancelled);
        Assert.Equal(0, ended.TokensSent);
        using var drained = new CancellationTokenSource(Wait.Timeout);
        await stack.Gateway.Registry.WhenEmptyAsync(drained.Token);
    }

    [Fact]
    public async Task ShippedDefaults_EveryClusterWaitsTenMinutesOfSilence_UnlessItSaysOtherwise()
    {
        await using var stack = await Stack.StartAsync(configure: s =>
        {
            s["ReverseProxy:Clusters:short:Destinations:d:Address"] = "http://127.0.0.1:9/";
            s["ReverseProxy:Clusters:short:HttpRequest:ActivityTimeout"] = "00:00:30";
        });

        // What the running forwarder will use, read from YARP's own state, not from the gateway's constant.
        var clusters = stack.Gateway.Services.GetRequiredService<IProxyStateLookup>();
        Assert.True(clusters.TryGetCluster("llm", out var llm));
        Assert.Equal(TimeSpan.FromMinutes(10), llm.Model.Config.HttpRequest?.ActivityTimeout);
        Assert.True(clusters.TryGetCluster("short", out var shortCluster));
        Assert.Equal(TimeSpan.FromSeconds(30), shortCluster.Model.Config.HttpRequest?.ActivityTimeout);
    }

    [Theory]
    [InlineData("ReverseProxy:Clusters:llm:HttpRequest:ActivityTimeout", "-00:00:01")]
    [InlineData("ReverseProxy:Clusters:llm:HttpRequest:ActivityTimeout", "ten minutes")]
    [InlineData("ReverseProxy:Clusters:llm:HttpRequest:ActivityTimeout", "00:00:00")]
    [InlineData("ReverseProxy:Routes:llm:Timeout", "soon")]
    [InlineData("ReverseProxy:Routes:llm:Timeout", "-00:00:05")]
    [InlineData("ReverseProxy:Routes:llm:TimeoutPolicy", "no-such-policy")]
    public async Task MalformedTimeoutSetting_RefusedAtStart(string key, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[key] = value;

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        // YARP's own messages name the value it could not read; the gateway's name the key.
        var message = ExceptionText.Flatten(refused);
        Assert.True(message.Contains(key, StringComparison.Ordinal) || message.Contains($"'{value}'", StringComparison.Ordinal), message);
    }

    private static void AssertTimeoutError(string path, JsonElement body)
    {
        switch (path)
        {
            case "/v1/chat/completions":
                Assert.Equal("upstream_timeout", body.GetProperty("error").GetProperty("code").GetString());
                break;
            case "/v1/messages":
                Assert.Equal("error", body.GetProperty("type").GetString());
                Assert.Equal("upstream_error", body.GetProperty("error").GetProperty("type").GetString());
                Assert.Contains("did not answer in time", body.GetProperty("error").GetProperty("message").GetString());
                break;
            default:
                Assert.Contains("did not answer in time", body.GetProperty("error").GetString());
                break;
        }
    }
}
