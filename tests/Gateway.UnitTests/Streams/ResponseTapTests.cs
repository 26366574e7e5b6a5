using Gateway.Protocols;
using Gateway.Streams;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Tests.Streams;

public sealed class ResponseTapTests
{
    private static ResponseTap NewTap(MemoryStream sink) => new(new StreamResponseBodyFeature(sink));

    [Theory]
    [InlineData("", true, true)]
    [InlineData("data: {\"a\":1}\n\n", true, true)]
    [InlineData("data: {\"a\":1}\n", false, true)]
    [InlineData("data: {\"a\":1}", false, false)]
    [InlineData("data: x\r\n\r\n", true, true)]
    [InlineData("{\"done\":false}\n", false, true)]
    public async Task Boundaries_AfterAnySplitOfTheBytes_MatchTheWholeText(string text, bool sseBoundary, bool lineBoundary)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        for (var split = 0; split <= bytes.Length; split++)
        {
            using var sink = new MemoryStream();
            var tap = NewTap(sink);
            await tap.WriteAsync(bytes.AsMemory(0, split));
            tap.Write(bytes.AsSpan(split));

            Assert.Equal(sseBoundary, tap.AtSseEventBoundary);
            Assert.Equal(lineBoundary, tap.AtLineBoundary);
            Assert.Equal(bytes, sink.ToArray()); // bytes pass unchanged
            Assert.Equal(bytes.Length, tap.BytesWritten);
        }
    }

    [Theory]
    [InlineData("text/event-stream", "Sse")]
    [InlineData("text/event-stream; charset=utf-8", "Sse")]
    [InlineData("TEXT/EVENT-STREAM", "Sse")]
    [InlineData("application/x-ndjson", "Ndjson")]
    [InlineData("application/json", "Json")]
    [InlineData("application/json; charset=utf-8", "Json")]
    [InlineData("text/plain", "Unknown")]
    [InlineData("", "Unknown")]
    [InlineData(null, "Unknown")]
    [InlineData(";;;", "Unknown")]
    public void FromContentType_MapsFraming(string? contentType, string expected) =>
        Assert.Equal(expected, Framings.FromContentType(contentType).ToString());
}
