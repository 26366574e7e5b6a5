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
