using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Streams;

public sealed class UpstreamFailureTests
{
    [Fact]
    public async Task UpstreamRefusesConnection_502WithOpenAiError()
    {
        await using var gateway = await GatewayHost.StartAsync(ClosedPorts.Address());
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var transcript = await StreamReading.SendAndReadAsync(client,
            StreamReading.ChatRequest("/v1/chat/completions", "hi", "refused", maxTokens: 3));

        Assert.Equal(502, transcript.StatusCode);
        var error = JsonDocument.Parse(string.Join('\n', transcript.Lines)).RootElement.GetProperty("error");
        Assert.Equal("upstream_error", error.GetProperty("type").GetString());
        Assert.Equal("upstream_unavailable", error.GetProperty("code").GetString());
        Assert.Equal(0, gateway.Registry.Count);
    }

    [Fact]
    public async Task UpstreamSilentPastActivityTimeout_504WithOpenAiError_UpstreamAborted()
    {
        await using var stack = await Stack.StartAsync(configure: s => s["ReverseProxy:Clusters:llm:HttpRequest:ActivityTimeout"] = "00:00:00.300");
        var transcript = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "hi", "slow", maxTokens: 5,
            headers: new Dictionary<string, string> { ["X-Mock-Ttft-Ms"] = "60000" }));

        Assert.Equal(504, transcript.StatusCode);
        var error = JsonDocument.Parse(string.Join('\n', transcript.Lines)).RootElement.GetProperty("error");
        Assert.Equal("upstream_timeout", error.GetProperty("code").GetString());
        var entry = await stack.WaitForEntryAsync("slow", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/api/chat")]
    public async Task UpstreamResetsMidStream_ClientGetsProtocolErrorThenCleanEnd(string path)
    {
        await using var stack = await Stack.StartAsync();
        var transcript = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest(path, "hi", "reset", maxTokens: 50,
            headers: new Dictionary<string, string> { ["X-Mock-Fail-After"] = "3" }));

        Assert.Equal(200, transcript.StatusCode);
        Assert.True(transcript.EndedCleanly, $"ended with {transcript.ReadError}");
        if (path.StartsWith("/v1/", StringComparison.Ordinal))
        {
            var error = JsonDocument.Parse(transcript.DataEvents[^1]).RootElement.GetProperty("error");
            Assert.Equal("upstream_reset", error.GetProperty("code").GetString());
            Assert.DoesNotContain("[DONE]", transcript.DataEvents);
        }
        else
        {
            var last = JsonDocument.Parse(transcript.Lines[^1]).RootElement;
            Assert.Contains("closed the stream", last.GetProperty("error").GetString());
        }

        var entry = Assert.Single(stack.Ledger.Snapshot());
        Assert.True(entry.Failed);
        Assert.Equal(3, entry.TokensSent);
    }
}
