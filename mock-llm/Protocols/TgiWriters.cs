using System.Buffers;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>TGI's SSE (<c>data:</c> with no space, as its server writes it): one <c>StreamResponse</c> per
/// token, <c>index</c> counting from 1; the last token's event carries <c>generated_text</c> and, when
/// the request asked for them, <c>details</c>.</summary>
internal sealed class TgiStreamWriter(GenerationContext generation) : SseWriter
{
    private int _tokensSent;

    public override bool EndsOnLastToken => true;

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        // Span copies plus two numbers; tokens are JSON-safe ASCII.
        output.Write("data:{\"index\":"u8);
        WriteNumber(output, _tokensSent + 1);
        output.Write(",\"token\":{\"id\":"u8);
        WriteNumber(output, generation.Script.TokenId(_tokensSent));
        output.Write(",\"text\":\""u8);
        output.Write(token);
        output.Write("\",\"logprob\":-0.5,\"special\":false},\"generated_text\":null,\"details\":null}\n\n"u8);
        _tokensSent++;
    }

    /// <summary>The last token's event; with no tokens at all, an end-of-sequence special token stands in.</summary>
    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        var count = stats.TokensSent;
        var text = new ArrayBufferWriter<byte>();
        generation.Script.WriteText(text, count);

        output.Write("data:"u8);
        using (var json = new Utf8JsonWriter(output))
        {
            json.WriteStartObject();
            json.WriteNumber("index", Math.Max(count, 1));
            json.WritePropertyName("token");
            if (count > 0)
            {
                TgiShapes.WriteToken(json, generation, count - 1);
            }
            else
            {
                json.WriteStartObject();
                json.WriteNumber("id", 0);
                json.WriteString("text", string.Empty);
                json.WriteNumber("logprob", 0);
                json.WriteBoolean("special", true);
                json.WriteEndObject();
            }

            json.WriteString("generated_text", text.WrittenSpan);
            if (generation.Request.Details)
            {
                json.WriteStartObject("details");
                TgiShapes.WriteDetailsHead(json, generation, count);
                json.WriteNumber("input_length", generation.Script.PromptTokens);
                json.WriteEndObject();
            }
            else
            {
                json.WriteNull("details");
            }

            json.WriteEndObject();
        }

        output.Write("\n\n"u8);
    }
}

/// <summary><c>{"generated_text"}</c>, plus <c>details</c> with every token when the request asked for them.</summary>
internal sealed class TgiBodyWriter(GenerationContext generation) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("generated_text", text);
        if (Generation.Request.Details)
        {
            json.WriteStartObject("details");
            TgiShapes.WriteDetailsHead(json, Generation, stats.TokensSent);
            json.WriteStartArray("prefill");
            json.WriteEndArray();
            json.WriteStartArray("tokens");
            for (var i = 0; i < stats.TokensSent; i++)
            {
                TgiShapes.WriteToken(json, Generation, i);
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        json.WriteEndObject();
    }
}

internal static class TgiShapes
{
    public static void WriteToken(Utf8JsonWriter json, GenerationContext generation, int index)
    {
        json.WriteStartObject();
        json.WriteNumber("id", generation.Script.TokenId(index));
        json.WriteString("text", generation.Script.Token(index));
        json.WriteNumber("logprob", -0.5);
        json.WriteBoolean("special", false);
        json.WriteEndObject();
    }

    /// <summary>Only reached when every planned token was sent.</summary>
    public static void WriteDetailsHead(Utf8JsonWriter json, GenerationContext generation, int generatedTokens)
    {
        json.WriteString("finish_reason", generation.StoppedByCap ? "length" : "eos_token");
        json.WriteNumber("generated_tokens", generatedTokens);
        json.WriteNull("seed");
    }
}
