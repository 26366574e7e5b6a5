using Gateway.Protocols;
using System.Text;
using Gateway.Tokens;
using static Gateway.Tests.Tokens.RecordedStreams;

namespace Gateway.Tests.Tokens;

public sealed class HostileUpstreamTests
{
    private static readonly byte[] GoodChunk = Encoding.UTF8.GetBytes("data: " + ChatChunk("{\"content\":\"ok\"}") + "\n\n");

    [Theory]
    [InlineData("data: {\"choices\":[{\"delta\":{\"content\":\"x\"\n\n")]
    [InlineData("data: {\"choices\":[{\"delta\":{\"content\":x}}]}\n\n")]
    [InlineData("data: {]\n\n")]
    [InlineData("data: {\"usage\":{\"completion_tokens\":\"many\"}}\n\n")]
    [InlineData("data: {\"usage\":{\"completion_tokens\":-5}}\n\n")]
    [InlineData("data: {\"usage\":{\"completion_tokens\":1e400}}\n\n")]
    [InlineData("data: {\"choices\":\"not an array\",\"usage\":7}\n\n")]
    public void MalformedJsonDataLine_Observe_CountsNothingAndLaterLinesStillCount(string hostile)
    {
        using var counter = ApiAdapters.Other.CreateCounter(Sse, new ContentText());

        counter.Observe(Encoding.UTF8.GetBytes(hostile));
        counter.Observe(GoodChunk);
        counter.Complete();

        Assert.Equal(1, counter.ContentChunks);
        Assert.Null(counter.ReportedCompletionTokens);
    }

    /// <summary>A chunk that yields no count must not add text for the tokenizer either.</summary>
    [Fact]
    public void TruncatedJsonDataLine_TokenizerMode_KeepsNoTextFromIt()
    {
        using var counter = ApiAdapters.Other.CreateCounter(Sse, new ContentText());

        counter.Observe("data: {\"choices\":[{\"delta\":{\"content\":\"lost\"\n\n"u8);
        counter.Observe(GoodChunk);
        counter.Complete();

        Assert.Equal(1, counter.ContentChunks);
        Assert.Equal("ok", Utf8Text(counter));
    }

    [Fact]
    public void DeeplyNestedJsonDataLine_Observe_CountsNothingWithoutThrowing()
    {
        var hostile = "data: {\"choices\":" + new string('[', 10_000) + "\n\n";
        using var counter = ApiAdapters.Other.CreateCounter(Sse, null);

        counter.Observe(Encoding.UTF8.GetBytes(hostile));
        counter.Observe(GoodChunk);

        Assert.Equal(1, counter.ContentChunks);
    }

    [Theory]
    [InlineData(Sse, false)]
    [InlineData(Ndjson, false)]
    [InlineData(Sse, true)]
    [InlineData(Ndjson, true)]
    public void NonUtf8BytesInsideLine_Observe_DoesNotThrowAndLaterLinesCount(string contentType, bool tokenizerMode)
    {
        var (before, after, good) = contentType == Sse
            ? ("data: {\"choices\":[{\"delta\":{\"content\":\"a", "\"}}]}\n\n", GoodChunk)
            : ("{\"response\":\"a", "\",\"done\":false}\n", Encoding.UTF8.GetBytes("{\"response\":\"ok\",\"done\":false}\n"));
        byte[] hostile = [.. Encoding.UTF8.GetBytes(before), 0xFF, 0xFE, 0xC3, .. Encoding.UTF8.GetBytes(after)];
        using var counter = ApiAdapters.Other.CreateCounter(contentType, tokenizerMode ? new ContentText() : null);

        var thrown = Record.Exception(() => counter.Observe(hostile));
        var afterHostile = counter.ContentChunks;
        counter.Observe(good);
        counter.Complete();

        Assert.Null(thrown);
        Assert.InRange(afterHostile, 0, 1);
        Assert.Equal(afterHostile + 1, counter.ContentChunks);
    }

    [Fact]
    public void TenMegabyteLineInSmallWrites_Observe_IsSkippedWithBoundedMemoryAndLaterLinesCount()
    {
        var huge = OversizedContentLine(10 * 1024 * 1024);
        using var counter = ApiAdapters.Other.CreateCounter(Sse, null);

        var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
        for (var offset = 0; offset < huge.Length; offset += 64 * 1024)
        {
            counter.Observe(huge.AsSpan(offset, Math.Min(64 * 1024, huge.Length - offset)));
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
        counter.Observe(GoodChunk);
        counter.Observe(GoodChunk);
        counter.Complete();

        Assert.Equal(2, counter.ContentChunks);
        Assert.True(allocated < 4 * LineFramer.MaxLineBytes, $"Counting a 10 MB line allocated {allocated} bytes");
    }

    /// <summary>
    /// The same bytes must count the same however the upstream's writes fall: a line over the limit is
    /// skipped when it arrives in pieces, so it must be skipped when it arrives in one write too.
    /// </summary>
    [Fact]
    public void TenMegabyteLineInOneWrite_Observe_IsSkippedLikeInSmallWrites()
    {
        var huge = OversizedContentLine(10 * 1024 * 1024);

        var oneWrite = Run(Sse, huge, GoodChunk);
        var smallWrites = Run(Sse, huge.Chunk(64 * 1024).Append(GoodChunk));

        Assert.Equal(1, smallWrites.ContentChunks);
        Assert.Equal(smallWrites, oneWrite);
    }

    [Fact]
    public void LineInOneByteWrites_Observe_CountsOnceWhenItEnds()
    {
        using var counter = ApiAdapters.Other.CreateCounter(Sse, null);
        var counts = new List<long>();

        foreach (var b in GoodChunk)
        {
            counter.Observe([b]);
            counts.Add(counter.ContentChunks);
        }

        var newline = Array.IndexOf(GoodChunk, (byte)'\n');
        Assert.All(counts[..newline], c => Assert.Equal(0, c));
        Assert.All(counts[newline..], c => Assert.Equal(1, c));
    }

    [Theory]
    [InlineData(Sse)]
    [InlineData(Ndjson)]
    [InlineData(Json)]
    [InlineData("text/plain")]
    public void EmptyWrites_Observe_CountNothing(string contentType)
    {
        using var counter = ApiAdapters.Other.CreateCounter(contentType, new ContentText());

        counter.Observe([]);
        counter.Observe(ReadOnlySpan<byte>.Empty);
        counter.Complete();

        Assert.Equal(0, counter.Tokens);
        Assert.Null(counter.ReportedCompletionTokens);
        Assert.Equal("", Utf8Text(counter));
    }

    [Theory]
    [InlineData("data:\n\n")]
    [InlineData("data: \n\n")]
    [InlineData("data:")]
    [InlineData("data:\r\n\r\n")]
    [InlineData("\n\n\n")]
    [InlineData("data: [DONE]\n\n")]
    [InlineData("data:[DONE]")]
    [InlineData("datax: word\n\n")]
    public void DataWithoutPayload_Observe_CountsNothing(string stream)
    {
        var counted = RunEverySplit(Sse, Encoding.UTF8.GetBytes(stream));

        Assert.Equal(0, counted.Tokens);
    }

    private static byte[] OversizedContentLine(int contentBytes)
    {
        var prefix = Encoding.UTF8.GetBytes("data: {\"choices\":[{\"delta\":{\"content\":\"");
        var suffix = Encoding.UTF8.GetBytes("\"}}]}\n\n");
        var line = new byte[prefix.Length + contentBytes + suffix.Length];
        prefix.CopyTo(line, 0);
        line.AsSpan(prefix.Length, contentBytes).Fill((byte)'a');
        suffix.CopyTo(line, prefix.Length + contentBytes);
        return line;
    }
}
