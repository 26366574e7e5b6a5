using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions;

public sealed class SessionSavingsEndpointTests
{
    private static async Task<JsonElement> SavingsAsync(Stack stack, string sessionId, string authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/sessions/{sessionId}/savings");
        request.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        using var response = await stack.Client.SendAsync(request);
        Assert.Equal(200, (int)response.StatusCode);
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    [Fact]
    public async Task AfterSupersede_OwnerSeesTokensSaved_OtherTenantSeesNothing()
    {
        var route = "sav" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: 2);
        var slow = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };
        using var old = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "chat-1", maxTokens: 50, authorization: "Bearer alice", headers: slow));
        await stack.WaitForEntryAsync("chat-1", e => e.TokensSent >= 3);
        await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "again", "chat-1", maxTokens: 2, authorization: "Bearer alice"));
        await StreamReading.ReadToEndAsync(old);
        await ended.WaitAsync();

        var mine = await SavingsAsync(stack, "chat-1", "Bearer alice");
        var theirs = await SavingsAsync(stack, "chat-1", "Bearer mallory");

        Assert.Equal("chat-1", mine.GetProperty("sessionId").GetString());
        Assert.InRange(mine.GetProperty("tokensSaved").GetInt64(), 1, 50);
        Assert.Equal(1, mine.GetProperty("cancellations").GetInt64());
        Assert.Equal(0, theirs.GetProperty("tokensSaved").GetInt64());
        Assert.Equal(0, theirs.GetProperty("cancellations").GetInt64());
        Assert.DoesNotContain(stack.Ledger.Snapshot(), e => e.Path.Contains("savings"));
    }

    [Fact]
    public async Task OversizedSessionId_400()
    {
        await using var stack = await Stack.StartAsync();
        using var response = await stack.Client.GetAsync($"/v1/sessions/{new string('x', 300)}/savings");

        Assert.Equal(400, (int)response.StatusCode);
        Assert.Contains("invalid_session_key", await response.Content.ReadAsStringAsync());
    }
}
