using System.Buffers;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>The seed's SSE: <c>data: &lt;token&gt;</c> per token, then <c>data: [DONE]</c>.</summary>
internal sealed class SeedSseWriter : SseWriter
{
    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        output.Write("data: "u8);
        output.Write(token);
        output.Write("\n\n"u8);
    }

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats) =>
        output.Write("data: [DONE]\n\n"u8);
}

/// <summary>The seed's fetch stream: bare token text, one chunked write per token.</summary>
internal sealed class SeedTextWriter : ChunkWriter
{
    public override string ContentType => "text/plain; charset=utf-8";

    public override bool Streams => true;

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token) => output.Write(token);

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        // The end of the chunked body is the end marker.
    }
}
