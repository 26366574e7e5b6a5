using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MockLlm.Generation;

/// <summary>One protocol's bytes on the wire. <see cref="TokenStreamer"/> owns timing, flushing,
/// cancellation and the ledger; a writer only formats.</summary>
internal abstract class ChunkWriter
{
    public abstract string ContentType { get; }

    /// <summary>False for single-body responses: nothing is flushed until the end.</summary>
    public abstract bool Streams { get; }

    /// <summary>True when the protocol's last token event is also its end (TGI's <c>generated_text</c>,
    /// Gemini's <c>finishReason</c> ride on it): the streamer then writes the last token through
    /// <see cref="WriteEnd"/>, whose stats count it, instead of <see cref="WriteToken"/>. When
    /// <c>X-Mock-Fail-After</c> withholds the end, every token goes through <see cref="WriteToken"/>.</summary>
    public virtual bool EndsOnLastToken => false;

    /// <summary>Written just before the first token (or before the end when there are no tokens).</summary>
    public virtual void WriteStart(IBufferWriter<byte> output)
    {
    }

    /// <summary>Hot path: called once per token; should not allocate.</summary>
    public abstract void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token);

    public abstract void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats);

    /// <summary>Formats straight into the output, so running counts cost no allocation per token.</summary>
    protected static void WriteNumber(IBufferWriter<byte> output, long value)
    {
        var span = output.GetSpan(20);
        value.TryFormat(span, out var written, default, CultureInfo.InvariantCulture);
        output.Advance(written);
    }
}

/// <summary>Server-sent events, flushed as they are written.</summary>
internal abstract class SseWriter : ChunkWriter
{
    public sealed override string ContentType => "text/event-stream";

    public sealed override bool Streams => true;

    /// <summary>Writes the <c>event:</c> line and opens the data object with a <c>type</c> that repeats the
    /// name, as Anthropic's and the Responses API's named events do.</summary>
    protected static Utf8JsonWriter BeginEvent(IBufferWriter<byte> output, string name)
    {
        output.Write("event: "u8);
        Encoding.UTF8.GetBytes(name, output);
        output.Write("\ndata: "u8);
        var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("type", name);
        return json;
    }

    /// <summary>Closes the data object of <see cref="BeginEvent"/> and the event.</summary>
    protected static void EndEvent(IBufferWriter<byte> output, Utf8JsonWriter json)
    {
        json.WriteEndObject();
        json.Dispose();
        output.Write("\n\n"u8);
    }
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
