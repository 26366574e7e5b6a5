using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Sessions;

/// <summary>
/// A route whose session id comes from the JSON body (<c>body:metadata.session_id</c>), fed bodies a
/// careful client would not send: malformed JSON, bodies far over the 64 KiB peek, bodies that arrive
/// in small chunked pieces. The body must reach the upstream byte for byte, and only a key the gateway
/// could read from a well-formed peek may track (and so supersede) a stream.
/// </summary>
public sealed class BodyKeySourceTests
{
    private const string Key = "body-key-1";

    /// <summary>Well under mock-llm's 1 MiB body limit (RequestBodyReader.MaxBodyBytes), far over the 64 KiB peek.</summary>
    private const int LargePadding = 900_000;

    /// <summary>Body keys, buffered up to 64 KiB (the default is 1 MiB) so that a ~900 KB body has its key past the limit.</summary>
    private static void UseBodySource(Dictionary<string, string?> settings, string routeId = "llm")
    {
        settings[$"ReverseProxy:Routes:{routeId}:Metadata:SessionStreams.Sources"] = "body:metadata.session_id";
        settings["Gateway:Sessions:MaxBodyKeyBytes"] = "65536";
    }

    /// <summary>A streaming chat body with the session id before or after a long message.</summary>
    private static byte[] ChatBody(string? key, bool keyBeforePadding, int padding, int maxTokens)
    {
        var metadata = key is null ? "" : $"\"metadata\":{{\"session_id\":\"{key}\"}}";
        var messages = $"\"messages\":[{{\"role\":\"user\",\"content\":\"{new string('p', padding)}\"}}]";
        var head = $"\"model\":\"mock-1\",\"stream\":true,\"max_tokens\":{maxTokens}";
        string[] fields = key is null ? [head, messages] : keyBeforePadding ? [head, metadata, messages] : [head, messages, metadata];
        return Encoding.UTF8.GetBytes("{" + string.Join(",", fields) + "}");
    }

    private static HttpRequestMessage Post(HttpContent content, int? tokensPerSecond = null)
    {
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = content };
        if (tokensPerSecond is { } tps)
        {
            request.Headers.TryAddWithoutValidation("X-Mock-Tokens-Per-Second", tps.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return request;
    }

    private static byte[] Malformed(string shape) => shape switch
    {
        // Cut off mid-object: the key itself is complete, the document is not.
        "truncated" => Encoding.UTF8.GetBytes($"{{\"model\":\"mock-1\",\"stream\":true,\"metadata\":{{\"session_id\":\"{Key}\""),
        // A complete object, then bytes no JSON parser accepts.
        "trailing-garbage" => Encoding.UTF8.GetBytes(
            $"{{\"model\":\"mock-1\",\"stream\":true,\"metadata\":{{\"session_id\":\"{Key}\"}},\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}} }}garbage"),
        // A broken literal after the key.
        "bad-literal" => Encoding.UTF8.GetBytes(
            $"{{\"model\":\"mock-1\",\"metadata\":{{\"session_id\":\"{Key}\"}},\"stream\":tru,\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}"),
        // Not JSON at all.
        "garbage-bytes" => [0xFF, 0xFE, 0x00, 0xC3, .. "{{{ not json ]]"u8.ToArray()],
        _ => throw new ArgumentOutOfRangeException(nameof(shape)),
    };

    [Theory]
    [InlineData("truncated")]
    [InlineData("trailing-garbage")]
    [InlineData("bad-literal")]
    [InlineData("garbage-bytes")]
    public async Task MalformedJsonBody_BodyKeySource_ForwardedAsIsAndDoesNotSupersedeTheLiveStream(string shape)
    {
        await using var stack = await Stack.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 0 }, s => UseBodySource(s));
        using var client = StreamReading.NewClient(stack.Gateway.BaseAddress);

        // The live stream this tenant is reading, keyed by the same body field.
        using var live = await StreamReading.SendAsync(client, Post(new ByteArrayContent(ChatBody(Key, true, 10, maxTokens: 40))));
        await stack.Ledger.WaitForAsync(l => l.Count == 1 && l[0].TokensSent > 0, Wait.Timeout);
        Assert.Equal(1, stack.Gateway.Registry.Count); // the body key is read from a well-formed body

        using var malformed = await client.SendAsync(Post(new ByteArrayContent(Malformed(shape))));
        var body = await malformed.Content.ReadAsStringAsync();

        // The upstream's own verdict came back: the bytes reached it, and the gateway did not answer for it.
        Assert.Equal(400, (int)malformed.StatusCode);
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.StartsWith("The request body is not valid JSON", error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.NotEqual("invalid_session_key", error.GetProperty("code").ToString());
        Assert.Single(stack.Ledger.Snapshot()); // the mock refused it before generating anything

        // A request the gateway could not read a key from must not have claimed the live stream's key.
        var transcript = await StreamReading.ReadToEndAsync(live);
        Assert.True(transcript.EndedCleanly);
        Assert.DoesNotContain(transcript.DataEvents, e => e.Contains("request_superseded", StringComparison.Ordinal));
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        Assert.True(Assert.Single(stack.Ledger.Snapshot()).Completed);
        await stack.Gateway.Registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
    }

    [Theory]
    [InlineData(false, 0)] // the key lies beyond the peek: the request is proxied untracked
    [InlineData(true, 1)] // the key lies inside the peek: tracked, though the body is far bigger
    public async Task BodyOverPeekCap_KeyAfterOrBeforePadding_ForwardedByteIdentical_TrackedOnlyWhenKeyInPeek(bool keyBeforePadding, int expectedActive)
    {
        await using var upstream = await RawUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseAddress, s => UseBodySource(s));
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var activeWhileForwarding = -1;
        upstream.OnRequest = _ => activeWhileForwarding = gateway.Registry.Count;
        var sent = ChatBody(Key, keyBeforePadding, LargePadding, maxTokens: 5);
        Assert.InRange(sent.Length, 800_000, 1_000_000);

        var transcript = await StreamReading.SendAndReadAsync(client, Post(new ByteArrayContent(sent)));

        Assert.Equal(200, transcript.StatusCode);
        Assert.True(transcript.EndedCleanly);
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        Assert.Equal(sent, Assert.Single(upstream.Received).Body); // forwarded unchanged, all of it
        Assert.Equal(expectedActive, activeWhileForwarding);
        await gateway.Registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
    }

    [Fact]
    public async Task BodyOverPeekCap_KeyAfterPadding_MockStreamsToCompletion_UntrackedWhileStreaming()
    {
        await using var stack = await Stack.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 0 }, s => UseBodySource(s));
        using var client = StreamReading.NewClient(stack.Gateway.BaseAddress);

        using var response = await StreamReading.SendAsync(client, Post(new ByteArrayContent(ChatBody(Key, false, LargePadding, maxTokens: 10))));
        await stack.Ledger.WaitForAsync(l => l.Count == 1 && l[0].TokensSent > 0, Wait.Timeout);
        var activeWhileStreaming = stack.Gateway.Registry.Count;
        var transcript = await StreamReading.ReadToEndAsync(response);

        Assert.Equal(0, activeWhileStreaming);
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        var entry = Assert.Single(stack.Ledger.Snapshot());
        Assert.Equal("mock-1", entry.Model);
        Assert.True(entry.Completed);
        Assert.Equal(10, entry.TokensSent);
    }

    [Fact]
    public async Task BodyOverPeekCap_KeyBeforePadding_TrackedAndSupersededByNewerRequest()
    {
        await using var stack = await Stack.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 0 }, s => UseBodySource(s));
        using var client = StreamReading.NewClient(stack.Gateway.BaseAddress);

        using var first = await StreamReading.SendAsync(client, Post(new ByteArrayContent(ChatBody(Key, true, LargePadding, maxTokens: 200))));
        await stack.Ledger.WaitForAsync(l => l.Count == 1 && l[0].TokensSent > 0, Wait.Timeout);
        var activeWhileStreaming = stack.Gateway.Registry.Count;
        var second = await StreamReading.SendAndReadAsync(client, Post(new ByteArrayContent(ChatBody(Key, true, 10, maxTokens: 3)), tokensPerSecond: 1000));
        var firstTranscript = await StreamReading.ReadToEndAsync(first);

        Assert.Equal(1, activeWhileStreaming);
        Assert.Equal("[DONE]", second.DataEvents[^1]);
        Assert.True(firstTranscript.EndedCleanly);
        Assert.Contains("request_superseded", firstTranscript.DataEvents[^1], StringComparison.Ordinal);
        var ledger = await stack.Ledger.WaitForAsync(l => l.Count == 2 && l[0].EndedAt is not null, Wait.Timeout);
        Assert.True(ledger[0].Cancelled);
        Assert.True(ledger[0].TokensSent < ledger[0].TokensPlanned);
    }

    [Theory]
    [InlineData(300, 7)] // a small body in 7-byte pieces: the key is split over many reads
    [InlineData(200_000, 4096)] // over the peek in 4 KiB pieces: the peek fills from many reads
    public async Task ChunkedBodyInSmallPieces_KeyBeforePadding_ForwardedByteIdentical_Tracked(int padding, int pieceSize)
    {
        await using var upstream = await RawUpstream.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseAddress, s => UseBodySource(s));
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var activeWhileForwarding = -1;
        upstream.OnRequest = _ => activeWhileForwarding = gateway.Registry.Count;
        var sent = ChatBody(Key, true, padding, maxTokens: 5);

        var transcript = await StreamReading.SendAndReadAsync(client, Post(new PiecewiseContent(sent, pieceSize)));

        Assert.Equal(200, transcript.StatusCode);
        Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        var received = Assert.Single(upstream.Received);
        Assert.Null(received.ContentLength); // it really was sent without a length
        Assert.Equal(sent, received.Body);
        Assert.Equal(1, activeWhileForwarding);
        await gateway.Registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
    }

    /// <summary>A body of unknown length (so HttpClient sends it chunked), written in small flushed pieces.</summary>
    private sealed class PiecewiseContent(byte[] body, int pieceSize) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            for (var at = 0; at < body.Length; at += pieceSize)
            {
                await stream.WriteAsync(body.AsMemory(at, Math.Min(pieceSize, body.Length - at)));
                await stream.FlushAsync();
                // Each flushed piece goes out as a chunk of its own; yielding lets the gateway read it
                // before the next is written, without a timer.
                await Task.Yield();
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
