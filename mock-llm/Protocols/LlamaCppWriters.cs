using System.Buffers;
using System.Text;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>llama.cpp's <c>/completion</c> SSE: one partial result per token with the running
/// <c>tokens_predicted</c>, then a <c>"stop": true</c> result with the counts, stop type and timings.</summary>
internal sealed class LlamaCppStreamWriter : SseWriter
{
    private readonly GenerationContext _generation;
    private readonly byte[] _tokenSuffix;
    private int _tokensSent;

    public LlamaCppStreamWriter(GenerationContext generation)
    {
        _generation = generation;

        // Built once per request so each token is span copies plus one count; tokens are JSON-safe ASCII.
        _tokenSuffix = Encoding.UTF8.GetBytes($",\"tokens_evaluated\":{generation.Script.PromptTokens}}}\n\n");
    }

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        output.Write("data: {\"index\":0,\"content\":\""u8);
        output.Write(token);
        output.Write("\",\"tokens\":[],\"stop\":false,\"id_slot\":0,\"tokens_predicted\":"u8);
        WriteNumber(output, ++_tokensSent);
        output.Write(_tokenSuffix);
    }

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        output.Write("data: "u8);
        using (var json = new Utf8JsonWriter(output))
        {
            LlamaCppShapes.WriteFinal(json, _generation, stats, content: default);
        }

        output.Write("\n\n"u8);
    }
}

/// <summary>The final result with the whole <c>content</c>, for <c>"stream": false</c>.</summary>
internal sealed class LlamaCppBodyWriter(GenerationContext generation) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        using var json = new Utf8JsonWriter(output);
        LlamaCppShapes.WriteFinal(json, Generation, stats, text);
    }
}

internal static class LlamaCppShapes
{
    public static void WriteFinal(Utf8JsonWriter json, GenerationContext generation, in GenerationStats stats, ReadOnlySpan<byte> content)
    {
        var prompt = generation.Script.PromptTokens;
        var predicted = stats.TokensSent;
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        json.WriteString("content", content);
        json.WriteStartArray("tokens");
        json.WriteEndArray();
        json.WriteNumber("id_slot", 0);
        json.WriteBoolean("stop", true);
        json.WriteString("model", generation.Model);
        json.WriteNumber("tokens_predicted", predicted);
        json.WriteNumber("tokens_evaluated", prompt);
        json.WriteBoolean("has_new_line", false);
        json.WriteBoolean("truncated", false);

        // Only reached when every planned token was sent.
        json.WriteString("stop_type", generation.StoppedByCap ? "limit" : "eos");
        json.WriteString("stopping_word", string.Empty);
        json.WriteNumber("tokens_cached", prompt + predicted);
        json.WriteStartObject("timings");
        WriteTimings(json, "prompt", prompt, stats.PromptEval);
        WriteTimings(json, "predicted", predicted, stats.Eval);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteTimings(Utf8JsonWriter json, string prefix, int count, TimeSpan duration)
    {
        var ms = duration.TotalMilliseconds;
        json.WriteNumber(prefix + "_n", count);
        json.WriteNumber(prefix + "_ms", ms);

        // JSON has no infinity: zero stands in where llama.cpp would divide by zero.
        json.WriteNumber(prefix + "_per_token_ms", count > 0 ? ms / count : 0);
        json.WriteNumber(prefix + "_per_second", ms > 0 ? count * 1000.0 / ms : 0);
    }
}
