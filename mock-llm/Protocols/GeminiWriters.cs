using System.Buffers;
using System.Text;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>Gemini SSE, framed with CRLF as Google's servers frame it: one <c>GenerateContentResponse</c> per
/// token, each with the running <c>usageMetadata</c>; the last token's chunk carries <c>finishReason</c>.</summary>
internal sealed class GeminiStreamWriter : SseWriter
{
    private readonly GenerationContext _generation;
    private readonly byte[] _usageHead;
    private readonly byte[] _finalUsageHead;
    private readonly byte[] _tail;
    private int _tokensSent;

    public GeminiStreamWriter(GenerationContext generation)
    {
        _generation = generation;
        var prompt = generation.Script.PromptTokens;

        // Built once per request so each token is span copies plus two counts; tokens are JSON-safe ASCII.
        _usageHead = UsageHead(finish: string.Empty, prompt);
        _finalUsageHead = UsageHead($"\"finishReason\":\"{GeminiShapes.FinishReason(generation)}\",", prompt);
        _tail = Encoding.UTF8.GetBytes(
            $"}},\"modelVersion\":\"{JsonEncodedText.Encode(generation.Model)}\",\"responseId\":\"{generation.Id}\"}}\r\n\r\n");

        static byte[] UsageHead(string finish, int prompt) => Encoding.UTF8.GetBytes(
            $"\"}}],\"role\":\"model\"}},{finish}\"index\":0}}],\"usageMetadata\":{{\"promptTokenCount\":{prompt},\"candidatesTokenCount\":");
    }

    public override bool EndsOnLastToken => true;

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token) =>
        WriteChunk(output, token, _usageHead, ++_tokensSent);

    /// <summary>The last token's chunk, or an empty-text chunk when there were no tokens.</summary>
    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        var last = stats.TokensSent > 0 ? _generation.Script.Token(stats.TokensSent - 1) : default;
        WriteChunk(output, last, _finalUsageHead, stats.TokensSent);
    }

    private void WriteChunk(IBufferWriter<byte> output, ReadOnlySpan<byte> text, byte[] usageHead, int candidatesTokens)
    {
        output.Write("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\""u8);
        output.Write(text);
        output.Write(usageHead);
        WriteNumber(output, candidatesTokens);
        output.Write(",\"totalTokenCount\":"u8);
        WriteNumber(output, _generation.Script.PromptTokens + candidatesTokens);
        output.Write(_tail);
    }
}

/// <summary>One <c>GenerateContentResponse</c> with the whole text, for <c>:generateContent</c>.</summary>
internal sealed class GeminiBodyWriter(GenerationContext generation) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        var prompt = Generation.Script.PromptTokens;
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteStartArray("candidates");
        json.WriteStartObject();
        json.WriteStartObject("content");
        json.WriteStartArray("parts");
        json.WriteStartObject();
        json.WriteString("text", text);
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteString("role", "model");
        json.WriteEndObject();
        json.WriteString("finishReason", GeminiShapes.FinishReason(Generation));
        json.WriteNumber("index", 0);
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteStartObject("usageMetadata");
        json.WriteNumber("promptTokenCount", prompt);
        json.WriteNumber("candidatesTokenCount", stats.TokensSent);
        json.WriteNumber("totalTokenCount", prompt + stats.TokensSent);
        json.WriteEndObject();
        json.WriteString("modelVersion", Generation.Model);
        json.WriteString("responseId", Generation.Id);
        json.WriteEndObject();
    }
}

internal static class GeminiShapes
{
    /// <summary>Only reached when every planned token was sent.</summary>
    public static string FinishReason(GenerationContext generation) => generation.StoppedByCap ? "MAX_TOKENS" : "STOP";
}
