using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Streams;

public sealed class PassThroughTests
{
    public static TheoryData<string, string> Requests => new()
    {
        { "POST", "/v1/chat/completions" },
        { "POST", "/v1/completions" },
        { "POST", "/api/chat" },
        { "POST", "/api/generate" },
        { "GET", "/api/sse-stream?query=the%20same%20question" },
        { "GET", "/api/fetch-stream?query=the%20same%20question" },
        { "GET", "/v1/models" },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task CompletedStream_ThroughGateway_ByteIdenticalToDirect(string method, string path)
    {
        await using var stack = await Stack.StartAsync();
        using var direct = StreamReading.NewClient(stack.Mock.BaseAddress);

        var viaGateway = await ReadBytesAsync(stack.Client, Build(method, path, "gw"));
        var viaDirect = await ReadBytesAsync(direct, Build(method, path, "direct"));

        Assert.NotEmpty(viaDirect);
        Assert.Equal(viaDirect, viaGateway);
    }

    private static HttpRequestMessage Build(string method, string path, string session)
    {
        var request = method == "GET"
            ? new HttpRequestMessage(HttpMethod.Get, path)
            : StreamReading.ChatRequest(path, "the same question", sessionId: null, maxTokens: 12);
        request.Headers.TryAddWithoutValidation("X-Session-Id", session);
        // Pins the clock the mock stamps into ids and timestamps, so two runs can be compared byte for byte.
        request.Headers.TryAddWithoutValidation("X-Mock-Clock", "1764000000");
        return request;
    }

    private static async Task<byte[]> ReadBytesAsync(HttpClient client, HttpRequestMessage request)
    {
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)response.StatusCode);
        return await response.Content.ReadAsByteArrayAsync();
    }
}
