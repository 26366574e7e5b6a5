using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>NDJSON in Ollama's shape: one object per token, then a <c>done: true</c> line with stats.</summary>
internal sealed class OllamaStreamWriter : ChunkWriter
{
    private readonly GenerationContext _generation;
    private readonly bool _chat;
    private readonly byte[] _linePrefix;
    private readonly byte[] _contentPrefix;
    private readonly byte[] _lineSuffix;

    public OllamaStreamWriter(GenerationContext generation, bool chat)
    {
        _generation = generation;
        _chat = chat;
        var model = JsonEncodedText.Encode(generation.Model).ToString();
        _linePrefix = Encoding.UTF8.GetBytes($"{{\"model\":\"{model}\",\"created_at\":\"");
        _contentPrefix = chat ? "\",\"message\":{\"role\":\"assistant\",\"content\":\""u8.ToArray() : "\",\"response\":\""u8.ToArray();
        _lineSuffix = chat ? "\"},\"done\":false}\n"u8.ToArray() : "\",\"done\":false}\n"u8.ToArray();
    }

    public override string ContentType => "application/x-ndjson";

    public override bool Streams => true;

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        output.Write(_linePrefix);
        var stamp = output.GetSpan(64);
        _generation.Time.GetUtcNow().UtcDateTime.TryFormat(stamp, out var written, "O", CultureInfo.InvariantCulture);
        output.Advance(written);
        output.Write(_contentPrefix);
        output.Write(token);
        output.Write(_lineSuffix);
    }

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        OllamaShapes.WriteFinal(output, _generation, _chat, stats, content: default);
        output.Write("\n"u8);
    }
}

/// <summary>The single object Ollama returns for <c>"stream": false</c>.</summary>
internal sealed class OllamaResponseWriter(GenerationContext generation, bool chat) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        OllamaShapes.WriteFinal(output, Generation, chat, stats, text);
    }
}

internal static class OllamaShapes
{
    public static void WriteFinal(
        IBufferWriter<byte> output, GenerationContext generation, bool chat, in GenerationStats stats, ReadOnlySpan<byte> content)
    {
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("model", generation.Model);
        json.WriteString("created_at", generation.Time.GetUtcNow().UtcDateTime);
        if (chat)
        {
            json.WriteStartObject("message");
            json.WriteString("role", "assistant");
            json.WriteString("content", content);
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("response", content);
        }

        json.WriteBoolean("done", true);
        json.WriteString("done_reason", generation.StoppedByCap ? "length" : "stop");
        json.WriteNumber("total_duration", Nanoseconds(stats.Total));
        json.WriteNumber("load_duration", 0);
        json.WriteNumber("prompt_eval_count", generation.Script.PromptTokens);
        json.WriteNumber("prompt_eval_duration", Nanoseconds(stats.PromptEval));
        json.WriteNumber("eval_count", stats.TokensSent);
        json.WriteNumber("eval_duration", Nanoseconds(stats.Eval));
        json.WriteEndObject();
    }

    private static long Nanoseconds(TimeSpan duration) => duration.Ticks * 100;
}
