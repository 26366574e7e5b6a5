using System.Security.Cryptography;
using System.Text;
using Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Tests.Streams;

/// <summary>
/// A backend that sends bytes no well-behaved model server would: invalid UTF-8, a line of 10 MB, a
/// last line without its newline, a type the gateway has no parser for. The token counters look at
/// every byte on the way; none of this may change a byte the client receives, end the response
/// early, or leave the gateway unable to serve the next request.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class HostileUpstreamBytesTests(ITestOutputHelper output)
{
    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    private static RawResponse Hostile(string shape) => shape switch
    {
        "sse-non-utf8" => new RawResponse("text/event-stream",
        [
            [.. Utf8("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a"), 0xFF, 0xFE, .. Utf8("b\"}}]}\n\n")],
            [.. Utf8("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\""), 0xC3], // a lone lead byte at the end of a write
            [.. Utf8("\"}}]}\n\n"), 0xC3, .. Utf8("\n\n")], // and one outside any JSON
            Utf8("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n"),
        ]),
        "sse-unterminated" => new RawResponse("text/event-stream; charset=utf-8",
        [
            Utf8("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n"),
            Utf8("data: [DO"),
            Utf8("NE]"), // the stream ends inside its last event: no newline, no blank line
        ]),
        "ndjson-no-final-newline" => new RawResponse("application/x-ndjson",
        [
            Utf8("{\"model\":\"m\",\"response\":\"a\",\"done\":false}\n{\"model\":\"m\",\"response\":\"b\",\"done\":false}\n"),
            Utf8("{\"model\":\"m\",\"response\":\"\",\"do"),
            Utf8("ne\":true,\"eval_count\":2}"),
        ]),
        "text-plain" => new RawResponse("text/plain",
        [
            Utf8("just some text, "),
            [0xFF, 0x00, 0xC3, .. Utf8(" with bytes that are not UTF-8\r\n")],
            Utf8("and a last line without a newline"),
        ]),
        _ => throw new ArgumentOutOfRangeException(nameof(shape)),
    };

    [Theory]
    [InlineData("sse-non-utf8")]
    [InlineData("sse-unterminated")]
    [InlineData("ndjson-no-final-newline")]
    [InlineData("text-plain")]
    public async Task HostileUpstreamBody_Proxied_ClientGetsIdenticalBytesAndGatewayServesNextRequest(string shape)
    {
        var hostile = Hostile(shape);
        await using var upstream = await RawUpstream.StartAsync(hostile);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseAddress);
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var (status, received) = await SendAsync(client, "hostile-" + shape);

        Assert.Equal(200, status);
        Assert.Equal(hostile.Body(), received);
        await gateway.Registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        await AssertServesHealthyRequestAsync(upstream, client);
    }

    [Fact]
    public async Task SingleTenMegabyteSseLine_Proxied_ClientGetsIdenticalBytesInBoundedMemory()
    {
        const int lineBytes = 10 * 1024 * 1024;
        const int chunkBytes = 64 * 1024;
        var body = new byte[6 + lineBytes + 2];
        "data: "u8.CopyTo(body);
        body.AsSpan(6, lineBytes).Fill((byte)'a');
        "\n\n"u8.CopyTo(body.AsSpan(6 + lineBytes));
        byte[] tail = Utf8("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n");
        var chunks = new List<byte[]>();
        for (var at = 0; at < body.Length; at += chunkBytes)
        {
            chunks.Add(body[at..Math.Min(body.Length, at + chunkBytes)]);
        }

        chunks.Add(tail); // an ordinary event after the long line, on the same stream
        var response = new RawResponse("text/event-stream", chunks);
        var expectedHash = SHA256.HashData(response.Body());
        var expectedLength = body.Length + tail.Length;
        await using var upstream = await RawUpstream.StartAsync(response);
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseAddress);
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var before = GC.GetTotalMemory(forceFullCollection: true);
        var peak = before;

        // Hash as it arrives, so the client holds no copy and the figure is the gateway's (and the upstream's).
        using var request = StreamReading.ChatRequest("/v1/chat/completions", "long line", "long-line");
        using var answer = await StreamReading.SendAsync(client, request);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long length = 0;
        await using (var stream = await answer.Content.ReadAsStreamAsync())
        {
            var buffer = new byte[64 * 1024];
            int read;
            while ((read = await stream.ReadAsync(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                length += read;
                peak = Math.Max(peak, GC.GetTotalMemory(forceFullCollection: false));
            }
        }

        var after = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"managed heap (whole test process): before {before / 1024} KiB, peak seen while reading {peak / 1024} KiB, " +
            $"after {after / 1024} KiB, growth {(after - before) / 1024} KiB");

        Assert.Equal(200, (int)answer.StatusCode);
        Assert.Equal(expectedLength, length);
        Assert.Equal(expectedHash, hash.GetHashAndReset());
        Assert.True(after - before < 200L * 1024 * 1024, $"managed heap grew by {(after - before) / 1024 / 1024} MB");
        await gateway.Registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        await AssertServesHealthyRequestAsync(upstream, client);
    }

    /// <summary>Sends a tracked chat request and reads the raw body to its end; a reset or truncated body fails the test.</summary>
    private static async Task<(int Status, byte[] Body)> SendAsync(HttpClient client, string sessionId)
    {
        using var request = StreamReading.ChatRequest("/v1/chat/completions", "hostile", sessionId);
        using var response = await StreamReading.SendAsync(client, request);
        var body = await response.Content.ReadAsByteArrayAsync(); // throws on a reset or a cut chunked body
        return ((int)response.StatusCode, body);
    }

    private static async Task AssertServesHealthyRequestAsync(RawUpstream upstream, HttpClient client)
    {
        upstream.Response = RawResponse.HealthySse();
        var (status, body) = await SendAsync(client, "healthy-after");
        Assert.Equal(200, status);
        Assert.Equal(upstream.Response.Body(), body);
    }
}
