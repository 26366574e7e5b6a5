using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Streams;

/// <summary>Over HTTP/2 YARP resets the stream instead of aborting the connection; the gateway must
/// intercept that too and end the superseded stream with its reason.</summary>
public sealed class Http2Tests
{
    [Fact]
    public async Task NewerRequestSameKey_OverHttp2_OldStreamGetsSupersededEventThenCleanEnd()
    {
        // Cleartext HTTP/2 (h2c with prior knowledge) needs an HTTP/2-only endpoint in Kestrel.
        await using var stack = await Stack.StartAsync(configure: s => s["Kestrel:EndpointDefaults:Protocols"] = "Http2");
        using var client = new HttpClient(new SocketsHttpHandler())
        {
            BaseAddress = stack.Gateway.BaseAddress,
            DefaultRequestVersion = HttpVersion.Version20,
            DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact, // h2c with prior knowledge
            Timeout = Wait.Timeout,
        };
        var slow = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "20" };
        var oldRequest = StreamReading.ChatRequest("/v1/chat/completions", "long", "h2", maxTokens: 400, headers: slow);
        oldRequest.Version = HttpVersion.Version20;
        oldRequest.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        using var oldResponse = await StreamReading.SendAsync(client, oldRequest);
        Assert.Equal(HttpVersion.Version20, oldResponse.Version);
        await stack.WaitForEntryAsync("h2", e => e.TokensSent >= 3);

        var newRequest = StreamReading.ChatRequest("/v1/chat/completions", "short", "h2", maxTokens: 3);
        newRequest.Version = HttpVersion.Version20;
        newRequest.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
        var newer = await StreamReading.SendAndReadAsync(client, newRequest);
        var old = await StreamReading.ReadToEndAsync(oldResponse);

        Assert.True(old.EndedCleanly, $"ended with {old.ReadError}");
        var error = JsonDocument.Parse(old.DataEvents[^1]).RootElement.GetProperty("error");
        Assert.Equal("request_superseded", error.GetProperty("type").GetString());
        Assert.Equal("[DONE]", newer.DataEvents[^1]);
        var oldEntry = await stack.WaitForEntryAsync("h2", e => e.EndedAt is not null, index: 0);
        Assert.True(oldEntry.Cancelled);
    }
}
