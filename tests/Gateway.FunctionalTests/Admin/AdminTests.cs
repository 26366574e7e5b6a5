using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Admin;

public sealed class AdminTests
{
    private const string Token = "admin-token-0123456789";
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private static HttpRequestMessage Admin(HttpMethod method, string path, string? token)
    {
        var request = new HttpRequestMessage(method, path);
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        return request;
    }

    [Fact]
    public async Task NoTokenConfigured_AdminNotMapped_PathIsJustProxied()
    {
        await using var stack = await Stack.StartAsync();
        using var response = await stack.Client.SendAsync(Admin(HttpMethod.Get, "/admin/streams", Token));

        Assert.Equal(404, (int)response.StatusCode); // the mock's answer: the gateway has no such endpoint
        Assert.DoesNotContain("\"streams\"", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong-token-0123456789")]
    [InlineData("admin-token-012345678")]
    public async Task MissingOrWrongToken_401(string? token)
    {
        await using var stack = await Stack.StartAsync(configure: s => s["Gateway:Admin:Token"] = Token);
        using var list = await stack.Client.SendAsync(Admin(HttpMethod.Get, "/admin/streams", token));
        using var delete = await stack.Client.SendAsync(Admin(HttpMethod.Delete, "/admin/streams/1", token));

        Assert.Equal(401, (int)list.StatusCode);
        Assert.Equal(401, (int)delete.StatusCode);
        Assert.Equal("Bearer", list.Headers.WwwAuthenticate.Single().Scheme);
    }

    [Fact]
    public async Task ListThenDelete_ShowsStreamWithoutSecrets_DeleteStopsIt()
    {
        await using var stack = await Stack.StartAsync(configure: s => s["Gateway:Admin:Token"] = Token);
        using var stream = await StreamReading.SendAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions",
            "a private prompt", "visible-session-id", maxTokens: 200, authorization: "Bearer sk-customer-secret", headers: Slow));
        await stack.WaitForEntryAsync("visible-session-id", e => e.TokensSent >= 3);

        using var list = await stack.Client.SendAsync(Admin(HttpMethod.Get, "/admin/streams", Token));
        var body = await list.Content.ReadAsStringAsync();
        var entry = Assert.Single(JsonDocument.Parse(body).RootElement.EnumerateArray());

        Assert.Equal(200, (int)list.StatusCode);
        Assert.Equal("llm", entry.GetProperty("route").GetString());
        Assert.Equal("mock-1", entry.GetProperty("model").GetString());
        Assert.True(entry.GetProperty("tokens").GetInt64() >= 1);
        Assert.True(entry.GetProperty("ageSeconds").GetDouble() > 0);
        Assert.Matches("^[0-9a-f]{12}$", entry.GetProperty("key").GetString());
        Assert.DoesNotContain("visible-session-id", body);
        Assert.DoesNotContain("sk-customer-secret", body);
        Assert.DoesNotContain("private prompt", body);

        var id = entry.GetProperty("id").GetInt64();
        using var delete = await stack.Client.SendAsync(Admin(HttpMethod.Delete, $"/admin/streams/{id}", Token));
        var transcript = await StreamReading.ReadToEndAsync(stream);
        using var again = await stack.Client.SendAsync(Admin(HttpMethod.Delete, $"/admin/streams/{id}", Token));

        Assert.Equal(204, (int)delete.StatusCode);
        Assert.Contains("request_stopped", transcript.DataEvents[^1]);
        Assert.Equal(404, (int)again.StatusCode);
    }
}
