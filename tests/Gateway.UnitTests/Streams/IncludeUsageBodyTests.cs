using System.Text;
using System.Text.Json;
using Gateway.Protocols;

namespace Gateway.Tests.Streams;

/// <summary>
/// The request half of <c>SessionStreams.IncludeUsage</c> on its own: the body streams through as it is read,
/// the member goes in before the top-level object's closing brace, and the length always grows by exactly
/// the member's (spaces when usage is not asked for), however the bytes arrive and however they are read.
/// </summary>
public sealed class IncludeUsageBodyTests
{
    public static TheoryData<string, bool> Bodies => new()
    {
        { """{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}""", true },
        { """{"messages":[{"role":"user","content":"} } \" }"}],"stream":true}""", true },
        { "{\"stream\" : true }\r\n\n", true },
        { """{"stream":false,"stream":true}""", true },
        { """{"stream":true,"nested":{"stream":false,"stream_options":null}}""", true },
        { """{"stream":false}""", false },
        { """{"model":"m"}""", false },
        { """{"stream":true,"stream_options":null}""", false },
        { """{"stream":true,"stream_options":{"include_usage":false}}""", false },
        { """{"stream":true,"stream\u005foptions":{}}""", false },
        { "{}", false },
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public async Task ValidBody_AnyArrivalAndReadSizes_MemberOrSpacesBeforeTheClose(string body, bool asks)
    {
        var original = JsonDocument.Parse(body).RootElement;
        foreach (var (arrival, read) in Sizes(body.Length))
        {
            var (output, asked) = await ForwardAsync(body, arrival, read);

            Assert.Equal(asks, asked);
            var close = body.LastIndexOf('}');
            var insert = asks ? Encoding.UTF8.GetString(IncludeUsage.Member) : new string(' ', IncludeUsage.Member.Length);
            Assert.Equal(body[..close] + insert + body[close..], output); // every other byte as sent
            var forwarded = JsonDocument.Parse(output).RootElement; // still one JSON document
            if (asks)
            {
                Assert.True(forwarded.GetProperty("stream_options").GetProperty("include_usage").GetBoolean());
                Assert.Equal(original.EnumerateObject().Count() + 1, forwarded.EnumerateObject().Count());
            }
            else
            {
                Assert.False(forwarded.TryGetProperty("stream_options", out var added) && added.ValueKind == JsonValueKind.Object
                    && added.TryGetProperty("include_usage", out _) && !body.Contains("include_usage", StringComparison.Ordinal));
            }
        }
    }

    /// <summary>Not one JSON object: forwarded as sent, with the spaces at its end.</summary>
    [Theory]
    [InlineData("""{"stream":true""")] // cut short
    [InlineData("not json at all }")]
    [InlineData("""[{"stream":true}]""")] // a top-level array
    [InlineData("")]
    public async Task NotOneJsonObject_ForwardedAsSentThenSpaces(string body)
    {
        foreach (var (arrival, read) in Sizes(Math.Max(1, body.Length)))
        {
            var (output, asked) = await ForwardAsync(body, arrival, read);

            Assert.False(asked);
            Assert.Equal(body + new string(' ', IncludeUsage.Member.Length), output);
        }
    }

    /// <summary>Bytes after the object (not valid JSON, refused upstream as it would be without the gateway):
    /// the member goes where the object closed, whatever comes after.</summary>
    [Theory]
    [InlineData("""{"stream":true} trailing""")]
    [InlineData("""{"stream":true}{"stream":false}""")]
    public async Task BytesAfterTheObject_MemberWhereTheObjectClosed(string body)
    {
        var close = body.IndexOf('}', StringComparison.Ordinal);
        foreach (var (arrival, read) in Sizes(body.Length))
        {
            var (output, asked) = await ForwardAsync(body, arrival, read);

            Assert.True(asked);
            Assert.Equal(body[..close] + Encoding.UTF8.GetString(IncludeUsage.Member) + body[close..], output);
        }
    }

    [Fact]
    public async Task LargeBody_StreamsThroughWithoutWaitingForItsEnd()
    {
        var prompt = new string('a', 4 * 1024 * 1024);
        var head = Encoding.UTF8.GetBytes("""{"stream":true,"messages":[{"role":"user","content":" """ + prompt);
        var source = new GatedStream(head, Encoding.UTF8.GetBytes("\"}]}"));
        var body = new IncludeUsage.RequestBody(source);
        var buffer = new byte[64 * 1024];

        // Everything sent so far is forwarded before the rest of the body exists.
        long passed = 0;
        while (passed < head.Length)
        {
            passed += await body.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.Equal(head.Length, passed);
        Assert.False(body.AskedUsage);
        source.Open();
        var rest = new MemoryStream();
        await body.CopyToAsync(rest);
        Assert.True(body.AskedUsage);
        Assert.Equal("\"}]" + Encoding.UTF8.GetString(IncludeUsage.Member) + "}", Encoding.UTF8.GetString(rest.ToArray()));
    }

    private static IEnumerable<(int Arrival, int Read)> Sizes(int length)
    {
        foreach (var arrival in new[] { 1, 2, 3, 7, length / 2 + 1, length, 4096 }.Where(a => a > 0).Distinct())
        {
            foreach (var read in new[] { 1, 5, 4096 })
            {
                yield return (arrival, read);
            }
        }
    }

    private static async Task<(string Output, bool Asked)> ForwardAsync(string body, int arrival, int read)
    {
        var body1 = new IncludeUsage.RequestBody(new TrickleStream(Encoding.UTF8.GetBytes(body), arrival));
        var output = new MemoryStream();
        var buffer = new byte[read];
        int n;
        while ((n = read % 2 == 1 ? body1.Read(buffer) : await body1.ReadAsync(buffer)) > 0)
        {
            output.Write(buffer, 0, n);
        }

        return (Encoding.UTF8.GetString(output.ToArray()), body1.AskedUsage);
    }

    /// <summary>Hands out its bytes at most <paramref name="arrival"/> at a time, as a socket does.</summary>
    private sealed class TrickleStream(byte[] bytes, int arrival) : MemoryStream(bytes)
    {
        public override int Read(Span<byte> buffer) => base.Read(buffer[..Math.Min(buffer.Length, arrival)]);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(buffer.Length, arrival)], cancellationToken);
    }

    /// <summary>Gives its first part at once and its second only once opened: an upload still under way.</summary>
    private sealed class GatedStream(byte[] first, byte[] second) : Stream
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _at;

        public void Open() => _open.TrySetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_at < first.Length)
            {
                var n = Math.Min(buffer.Length, first.Length - _at);
                first.AsSpan(_at, n).CopyTo(buffer.Span);
                _at += n;
                return n;
            }

            await _open.Task.WaitAsync(cancellationToken);
            var done = _at - first.Length;
            var m = Math.Min(buffer.Length, second.Length - done);
            second.AsSpan(done, m).CopyTo(buffer.Span);
            _at += m;
            return m;
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
