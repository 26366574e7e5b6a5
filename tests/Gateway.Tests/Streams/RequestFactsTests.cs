using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Gateway.Streams;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Tests.Streams;

public sealed class RequestFactsTests
{
    private const string OpenAiBody =
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Say \\\"hi\\\"\"}],\"stream\":true,"
        + "\"stream_options\":{\"include_usage\":true},\"max_tokens\":512,\"temperature\":0.2}";

    private const string OllamaBody =
        "{\"model\":\"llama3.2:3b\",\"messages\":[{\"role\":\"user\",\"content\":\"why is the sky blue?\"}],"
        + "\"stream\":false,\"options\":{\"temperature\":0.1,\"stop\":[\"\\n\"],\"num_predict\":128,\"seed\":42}}";

    private static RequestFacts Parse(string json, bool isFinalBlock = true) => Parse(Encoding.UTF8.GetBytes(json), isFinalBlock);

    private static RequestFacts Parse(byte[] json, bool isFinalBlock = true) => RequestFacts.Parse(new ReadOnlySequence<byte>(json), isFinalBlock);

    [Fact]
    public void OpenAiBody_Parse_ReadsModelStreamAndMaxTokens() =>
        Assert.Equal(new RequestFacts("gpt-4o-mini", true, 512), Parse(OpenAiBody));

    [Fact]
    public void OllamaBody_Parse_ReadsNumPredict() =>
        Assert.Equal(new RequestFacts("llama3.2:3b", false, 128), Parse(OllamaBody));

    [Theory]
    [InlineData("{\"max_completion_tokens\":100,\"max_tokens\":900}", 100L)]
    [InlineData("{\"max_tokens\":900,\"max_completion_tokens\":100}", 100L)]
    [InlineData("{\"max_tokens\":900,\"max_completion_tokens\":0}", 900L)]
    [InlineData("{\"max_tokens\":0}", null)]
    [InlineData("{\"max_tokens\":-1}", null)]
    [InlineData("{\"max_tokens\":null}", null)]
    [InlineData("{\"max_tokens\":\"512\"}", null)]
    [InlineData("{\"max_tokens\":1.5}", null)]
    [InlineData("{\"max_tokens\":99999999999999999999999}", null)]
    [InlineData("{\"options\":{\"num_predict\":-1}}", null)]
    [InlineData("{\"options\":{\"num_predict\":-2}}", null)]
    [InlineData("{\"options\":{\"num_predict\":64}}", 64L)]
    [InlineData("{\"options\":null,\"max_tokens\":7}", 7L)]
    [InlineData("{\"options\":[1,{\"num_predict\":5}],\"max_tokens\":7}", 7L)]
    [InlineData("{\"metadata\":{\"max_tokens\":5}}", null)]
    public void CapFields_Parse_PickTheCap(string json, long? expected) =>
        Assert.Equal(expected, Parse(json).MaxTokens);

    [Theory]
    [InlineData("{\"stream\":true}", true)]
    [InlineData("{\"stream\":false}", false)]
    [InlineData("{\"stream\":\"true\"}", null)]
    [InlineData("{\"stream\":1}", null)]
    [InlineData("{}", null)]
    public void StreamField_Parse_ReadsOnlyBooleans(string json, bool? expected) =>
        Assert.Equal(expected, Parse(json).Stream);

    [Fact]
    public void BodyCutAtEveryByte_Parse_KeepsOnlyWholeFieldsReadBeforeTheCut()
    {
        var bytes = Encoding.UTF8.GetBytes(OpenAiBody);
        var whole = Parse(bytes);
        string? lastModel = null;
        bool? lastStream = null;
        long? lastMax = null;

        for (var cut = 0; cut < bytes.Length; cut++)
        {
            var facts = Parse(bytes[..cut], isFinalBlock: false);

            // A field is either absent or its real value, and once read stays read for longer cuts.
            Assert.True(facts.Model is null || facts.Model == whole.Model, $"cut {cut}: {facts}");
            Assert.True(facts.Stream is null || facts.Stream == whole.Stream, $"cut {cut}: {facts}");
            Assert.True(facts.MaxTokens is null || facts.MaxTokens == whole.MaxTokens, $"cut {cut}: {facts}");
            Assert.False(lastModel is not null && facts.Model is null, $"cut {cut} lost the model");
            Assert.False(lastStream is not null && facts.Stream is null, $"cut {cut} lost stream");
            Assert.False(lastMax is not null && facts.MaxTokens is null, $"cut {cut} lost max_tokens");
            (lastModel, lastStream, lastMax) = (facts.Model, facts.Stream, facts.MaxTokens);
        }

        Assert.Equal(new RequestFacts("gpt-4o-mini", true, 512), whole);
    }

    [Fact]
    public void BodyCutInsideMessages_Parse_KeepsModelReadBeforeIt()
    {
        var cut = OpenAiBody[..OpenAiBody.IndexOf("Say", StringComparison.Ordinal)];

        Assert.Equal(new RequestFacts("gpt-4o-mini", null, null), Parse(cut, isFinalBlock: false));
    }

    [Fact]
    public void BodyCutAfterStream_Parse_KeepsModelAndStream()
    {
        var cut = OpenAiBody[..(OpenAiBody.IndexOf("\"stream\":true,", StringComparison.Ordinal) + 14)];

        Assert.Equal(new RequestFacts("gpt-4o-mini", true, null), Parse(cut, isFinalBlock: false));
    }

    [Theory]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5,,}")]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5 \"stream\":true}")]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5,\"x\":tru}")]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5}}}}")]
    public void MalformedAfterFields_Parse_KeepsFieldsBeforeTheFault(string json)
    {
        var facts = Parse(json);

        Assert.Equal("m", facts.Model);
        Assert.Equal(5, facts.MaxTokens);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[{\"model\":\"m\"}]")]
    [InlineData("\"model\"")]
    [InlineData("{\"model\":")]
    [InlineData("{'model':'m'}")]
    [InlineData("{\"model\":m}")]
    public void MalformedJson_Parse_ReturnsNoModelWithoutThrowing(string json)
    {
        var facts = Parse(json);

        Assert.Null(facts.Model);
    }

    [Fact]
    public void DeepNesting_Parse_DoesNotThrow()
    {
        Assert.Equal(RequestFacts.None, Parse(new string('[', 10_000)));
        Assert.Equal(RequestFacts.None, Parse(new string('{', 10_000)));
        Assert.Equal(new RequestFacts("m", null, null), Parse("{\"model\":\"m\",\"messages\":" + new string('[', 10_000)));
        Assert.Equal(new RequestFacts("m", null, null), Parse("{\"model\":\"m\",\"messages\":" + new string('[', 10_000), isFinalBlock: false));
        Assert.Equal(new RequestFacts("m", null, null), Parse("{\"model\":\"m\",\"options\":" + string.Concat(Enumerable.Repeat("{\"a\":", 10_000))));
    }

    [Fact]
    public void ModelOver256Bytes_Parse_IsIgnored()
    {
        Assert.Equal(new string('m', 256), Parse($"{{\"model\":\"{new string('m', 256)}\"}}").Model);
        Assert.Null(Parse($"{{\"model\":\"{new string('m', 257)}\",\"stream\":true}}").Model);
        Assert.True(Parse($"{{\"model\":\"{new string('m', 257)}\",\"stream\":true}}").Stream);
    }

    /// <summary>The pipe hands the body over in segments; the facts must not depend on where they fall.</summary>
    [Theory]
    [InlineData(OpenAiBody)]
    [InlineData(OllamaBody)]
    public void SegmentedBody_Parse_MatchesContiguous(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var contiguous = Parse(bytes);

        foreach (var segmentSize in new[] { 1, 2, 3, 7, 16, 64, 100 })
        {
            Assert.Equal(contiguous, RequestFacts.Parse(Segmented(bytes, segmentSize), isFinalBlock: true));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(4096)]
    public void ModelOver256BytesAcrossSegments_Parse_IsIgnored(int segmentSize)
    {
        var bytes = Encoding.UTF8.GetBytes("{\"model\":\"" + new string('m', 300) + "\",\"stream\":true}");

        var facts = RequestFacts.Parse(Segmented(bytes, segmentSize), isFinalBlock: true);

        Assert.True(facts.Model is null, $"a {facts.Model?.Length}-char model was kept");
        Assert.True(facts.Stream);
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE })]
    [InlineData(new byte[] { 0xC3 })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    public void InvalidUtf8InModel_Parse_DoesNotThrow(byte[] invalid)
    {
        byte[] json = [.. "{\"model\":\"m"u8, .. invalid, .. "\",\"max_tokens\":5}"u8];

        var facts = Parse(json);

        Assert.Null(facts.Model);
    }

    [Fact]
    public async Task SmallBody_PeekAsync_ReadsFactsAndLeavesTheBodyUnchanged()
    {
        var body = Encoding.UTF8.GetBytes(OpenAiBody);
        var context = NewContext(body);

        var facts = await RequestFacts.PeekAsync(context.Request, RequestFacts.DefaultPeekBytes, CancellationToken.None);

        Assert.Equal(new RequestFacts("gpt-4o-mini", true, 512), facts);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task BodyLargerThanCap_PeekAsync_ReadsLeadingFactsAndLeavesTheBodyUnchanged()
    {
        var body = LargeBody(1024 * 1024);
        var context = NewContext(body);

        var facts = await RequestFacts.PeekAsync(context.Request, RequestFacts.DefaultPeekBytes, CancellationToken.None);

        Assert.Equal(new RequestFacts("llama3.2", true, null), facts); // max_tokens sits past the cap
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task BodyArrivingInPieces_PeekAsync_WaitsForEnoughBytesAndLeavesTheBodyUnchanged()
    {
        var body = LargeBody(256 * 1024);
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var context = NewContext(pipe.Reader, body.Length);
        var writing = Task.Run(async () =>
        {
            foreach (var piece in body.Chunk(1000))
            {
                await pipe.Writer.WriteAsync(piece);
            }

            await pipe.Writer.CompleteAsync();
        });

        var facts = await RequestFacts.PeekAsync(context.Request, RequestFacts.DefaultPeekBytes, CancellationToken.None);
        await writing;

        Assert.Equal(new RequestFacts("llama3.2", true, null), facts);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task BodyExactlyAtCap_PeekAsync_ParsesItAsComplete()
    {
        var json = "{\"model\":\"m\",\"max_tokens\":42}";
        var body = Encoding.UTF8.GetBytes(json);
        var context = NewContext(body);

        var facts = await RequestFacts.PeekAsync(context.Request, body.Length, CancellationToken.None);

        Assert.Equal(new RequestFacts("m", null, 42), facts);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task InvalidUtf8InModel_PeekAsync_DoesNotThrowAndLeavesTheBodyUnchanged()
    {
        byte[] body = [.. "{\"model\":\"gpt"u8, 0xFF, .. "\",\"stream\":true}"u8];
        var context = NewContext(body);

        var facts = await RequestFacts.PeekAsync(context.Request, RequestFacts.DefaultPeekBytes, CancellationToken.None);

        Assert.Null(facts.Model);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    /// <summary>Kestrel hands the body over in ~4 KiB pipe segments: a long model must be ignored wherever they fall.</summary>
    [Fact]
    public async Task ModelOver256BytesAcrossPipeSegments_PeekAsync_IsIgnored()
    {
        var body = Encoding.UTF8.GetBytes("{\"model\":\"" + new string('m', 10_000) + "\",\"stream\":true}");
        var context = NewContext(body);

        var facts = await RequestFacts.PeekAsync(context.Request, RequestFacts.DefaultPeekBytes, CancellationToken.None);

        Assert.True(facts.Model is null, $"a {facts.Model?.Length}-char model was kept");
        Assert.True(facts.Stream);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Theory]
    [InlineData("GET", "application/json")]
    [InlineData("POST", "text/plain")]
    [InlineData("POST", null)]
    public async Task NotAJsonPost_PeekAsync_ReadsNothing(string method, string? contentType)
    {
        var body = Encoding.UTF8.GetBytes(OpenAiBody);
        var context = NewContext(body);
        context.Request.Method = method;
        context.Request.ContentType = contentType;

        var facts = await RequestFacts.PeekAsync(context.Request, RequestFacts.DefaultPeekBytes, CancellationToken.None);

        Assert.Equal(RequestFacts.None, facts);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    /// <summary>The model first, then filler past the peek cap, then a cap field the peek cannot see.</summary>
    private static byte[] LargeBody(int size)
    {
        var head = "{\"model\":\"llama3.2\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"";
        var tail = "\"}],\"max_tokens\":77}";
        return Encoding.UTF8.GetBytes(head + new string('x', size - head.Length - tail.Length) + tail);
    }

    private static DefaultHttpContext NewContext(byte[] body) =>
        NewContext(PipeReader.Create(new MemoryStream(body), new StreamPipeReaderOptions(bufferSize: 4096)), body.Length);

    /// <summary>
    /// As Kestrel does it: Request.Body and Request.BodyReader read the same pipe, so bytes the peek
    /// leaves unconsumed are what the forwarder then reads.
    /// </summary>
    private static DefaultHttpContext NewContext(PipeReader reader, long length)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.ContentType = "application/json; charset=utf-8";
        context.Request.ContentLength = length;
        context.Features.Set<IRequestBodyPipeFeature>(new PipeBody(reader));
        context.Request.Body = reader.AsStream();
        return context;
    }

    private static async Task<byte[]> ReadToEndAsync(Stream body)
    {
        using var copy = new MemoryStream();
        await body.CopyToAsync(copy);
        return copy.ToArray();
    }

    private static ReadOnlySequence<byte> Segmented(byte[] bytes, int segmentSize)
    {
        var pieces = bytes.Chunk(segmentSize).ToArray();
        var first = new Segment(pieces[0], 0);
        var last = first;
        foreach (var piece in pieces.Skip(1))
        {
            last = last.Append(piece);
        }

        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }

    private sealed class PipeBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}
