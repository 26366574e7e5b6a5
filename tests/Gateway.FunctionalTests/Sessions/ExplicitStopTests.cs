using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions;

/// <summary>The "stop generating" button: POST /v1/sessions/{id}/cancel, in the caller's own scope.</summary>
public sealed class ExplicitStopTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private static HttpRequestMessage Stop(string sessionId, string? authorization)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
        if (authorization is not null)
        {
            request.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        }

        return request;
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/api/chat")]
    public async Task Stop_ActiveStream_ClientGetsRequestStoppedThenCleanEnd_UpstreamCancelled(string path)
    {
        await using var stack = await Stack.StartAsync();
        using var stream = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest(path, "long", "stop-1", maxTokens: 200, authorization: "Bearer alice", headers: Slow));
        await stack.WaitForEntryAsync("stop-1", e => e.TokensSent >= 2);

        using var stop = await stack.Client.SendAsync(Stop("stop-1", "Bearer alice"));
        var transcript = await StreamReading.ReadToEndAsync(stream);

        Assert.Equal(200, (int)stop.StatusCode);
        Assert.Equal(1, JsonDocument.Parse(await stop.Content.ReadAsStringAsync()).RootElement.GetProperty("cancelled").GetInt32());
        Assert.True(transcript.EndedCleanly);
        if (path.StartsWith("/v1/", StringComparison.Ordinal))
        {
            var error = JsonDocument.Parse(transcript.DataEvents[^1]).RootElement.GetProperty("error");
            Assert.Equal("request_stopped", error.GetProperty("type").GetString());
        }
        else
        {
            Assert.Contains("stopped", JsonDocument.Parse(transcript.Lines[^1]).RootElement.GetProperty("error").GetString());
        }

        var entry = await stack.WaitForEntryAsync("stop-1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
    }

    [Fact]
    public async Task Stop_NothingActive_404WithOpenAiError()
    {
        await using var stack = await Stack.StartAsync();
        using var stop = await stack.Client.SendAsync(Stop("idle", "Bearer alice"));

        Assert.Equal(404, (int)stop.StatusCode);
        Assert.Equal("session_not_active",
            JsonDocument.Parse(await stop.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task Stop_OtherTenantKnowingTheSessionId_404_StreamUntouched()
    {
        await using var stack = await Stack.StartAsync();
        using var victim = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "mine", "shared-id", maxTokens: 30, authorization: "Bearer tenant-b",
                headers: new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "40" }));
        await stack.WaitForEntryAsync("shared-id", e => e.TokensSent >= 2);

        using var byMallory = await stack.Client.SendAsync(Stop("shared-id", "Bearer tenant-a"));
        using var anonymous = await stack.Client.SendAsync(Stop("shared-id", authorization: null));
        var transcript = await StreamReading.ReadToEndAsync(victim);

        Assert.Equal(404, (int)byMallory.StatusCode);
        Assert.Equal(404, (int)anonymous.StatusCode);
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        Assert.True((await stack.WaitForEntryAsync("shared-id", e => e.EndedAt is not null)).Completed);
    }

    [Fact]
    public async Task Stop_CustomPath_FromConfiguration()
    {
        await using var stack = await Stack.StartAsync(configure: s => s["Gateway:Sessions:CancelPath"] = "/stop/{sessionId}");
        using var stream = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "custom", maxTokens: 200, headers: Slow));
        await stack.WaitForEntryAsync("custom", e => e.TokensSent >= 1);

        using var stop = await stack.Client.PostAsync("/stop/custom", null);

        Assert.Equal(200, (int)stop.StatusCode);
        await StreamReading.ReadToEndAsync(stream);
        Assert.True((await stack.WaitForEntryAsync("custom", e => e.EndedAt is not null)).Cancelled);
    }
}
