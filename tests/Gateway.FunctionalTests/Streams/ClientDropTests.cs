using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Streams;

public sealed class ClientDropTests
{
    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/api/chat")]
    [InlineData("/api/sse-stream?query=hello")]
    public async Task ClientGoesAway_UpstreamRequestAborted_TokensStopGrowing(string path)
    {
        await using var stack = await Stack.StartAsync();
        using var client = StreamReading.NewClient(stack.Gateway.BaseAddress);
        var request = path.Contains('?')
            ? new HttpRequestMessage(HttpMethod.Get, path)
            : StreamReading.ChatRequest(path, "a long answer please", sessionId: null, maxTokens: 400);
        request.Headers.TryAddWithoutValidation("X-Session-Id", "drop-1");
        request.Headers.TryAddWithoutValidation("X-Mock-Tokens-Per-Second", "20");
        var response = await StreamReading.SendAsync(client, request);
        var body = await response.Content.ReadAsStreamAsync();
        Assert.True(await body.ReadAsync(new byte[64]) > 0);
        await stack.WaitForEntryAsync("drop-1", e => e.TokensSent >= 3);

        // The client vanishes: its connection is torn down.
        response.Dispose();
        client.Dispose();

        var ended = await stack.WaitForEntryAsync("drop-1", e => e.EndedAt is not null);
        Assert.True(ended.Cancelled);
        Assert.True(ended.TokensSent < ended.TokensPlanned, $"{ended.TokensSent} of {ended.TokensPlanned}");

        // Another full request through the same mock is a happens-after marker: by its end the
        // dropped entry must not have grown.
        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "x", "after", maxTokens: 3));
        Assert.Equal(ended.TokensSent, stack.Ledger.Snapshot().Single(e => e.SessionId == "drop-1").TokensSent);

        using var drained = new CancellationTokenSource(Wait.Timeout);
        await stack.Gateway.Registry.WhenEmptyAsync(drained.Token);
    }
}
