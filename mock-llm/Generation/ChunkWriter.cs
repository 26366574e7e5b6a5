using System.Buffers;

namespace MockLlm.Generation;

/// <summary>One protocol's bytes on the wire. <see cref="TokenStreamer"/> owns timing, flushing,
/// cancellation and the ledger; a writer only formats.</summary>
internal abstract class ChunkWriter
{
    public abstract string ContentType { get; }

    /// <summary>False for single-body responses: nothing is flushed until the end.</summary>
    public abstract bool Streams { get; }

    /// <summary>Written just before the first token (or before the end when there are no tokens).</summary>
    public virtual void WriteStart(IBufferWriter<byte> output)
    {
    }

    /// <summary>Hot path: called once per token; should not allocate.</summary>
    public abstract void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token);

    public abstract void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats);
}

/// <summary>A single JSON body written once generation ends (<c>"stream": false</c>); the text is
/// replayed from the script, so nothing is kept per token.</summary>
internal abstract class WholeBodyWriter(GenerationContext generation) : ChunkWriter
{
    protected GenerationContext Generation { get; } = generation;

    public sealed override string ContentType => "application/json";

    public sealed override bool Streams => false;

    public sealed override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
    }

    public sealed override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        var text = new ArrayBufferWriter<byte>();
        Generation.Script.WriteText(text, stats.TokensSent);
        WriteBody(output, stats, text.WrittenSpan);
    }

    protected abstract void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text);
}
