using System.Buffers;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>Messages SSE: <c>message_start</c>, one text block (<c>content_block_start</c>, a <c>ping</c>, one
/// <c>content_block_delta</c> per token, <c>content_block_stop</c>), <c>message_delta</c> with the stop reason and
/// the running output total, <c>message_stop</c>. Every event is named: the official SDKs skip unnamed ones.</summary>
internal sealed class AnthropicStreamWriter(GenerationContext generation) : SseWriter
{
    public override void WriteStart(IBufferWriter<byte> output)
    {
        var json = BeginEvent(output, "message_start");
        json.WritePropertyName("message");
        AnthropicShapes.WriteMessage(json, generation, finished: false, text: default, outputTokens: 1);
        EndEvent(output, json);

        output.Write("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"u8);
        output.Write("event: ping\ndata: {\"type\": \"ping\"}\n\n"u8);
    }

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        // Tokens are JSON-safe ASCII, so each is three span copies.
        output.Write("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\""u8);
        output.Write(token);
        output.Write("\"}}\n\n"u8);
    }

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        output.Write("event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"u8);

        var json = BeginEvent(output, "message_delta");
        json.WriteStartObject("delta");
        json.WriteString("stop_reason", AnthropicShapes.StopReason(generation));
        json.WriteNull("stop_sequence");
        json.WriteEndObject();
        json.WriteStartObject("usage");
        json.WriteNumber("output_tokens", stats.TokensSent);
        json.WriteEndObject();
        EndEvent(output, json);

        output.Write("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"u8);
    }
}

/// <summary>The message object alone, for <c>"stream": false</c>.</summary>
internal sealed class AnthropicBodyWriter(GenerationContext generation) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        using var json = new Utf8JsonWriter(output);
        AnthropicShapes.WriteMessage(json, Generation, finished: true, text, stats.TokensSent);
    }
}

internal static class AnthropicShapes
{
    /// <summary>Only reached when every planned token was sent.</summary>
    public static string StopReason(GenerationContext generation) => generation.StoppedByCap ? "max_tokens" : "end_turn";

    /// <param name="finished">False for <c>message_start</c>: no content, no stop reason yet.</param>
    /// <param name="outputTokens">At the start the real API reports 1 before anything is generated.</param>
    public static void WriteMessage(Utf8JsonWriter json, GenerationContext generation, bool finished, ReadOnlySpan<byte> text, int outputTokens)
    {
        json.WriteStartObject();
        json.WriteString("id", "msg_" + generation.Id);
        json.WriteString("type", "message");
        json.WriteString("role", "assistant");
        json.WriteString("model", generation.Model);
        json.WriteStartArray("content");
        if (finished)
        {
            json.WriteStartObject();
            json.WriteString("type", "text");
            json.WriteString("text", text);
            json.WriteEndObject();
        }

        json.WriteEndArray();
        if (finished)
        {
            json.WriteString("stop_reason", StopReason(generation));
        }
        else
        {
            json.WriteNull("stop_reason");
        }

        json.WriteNull("stop_sequence");
        json.WriteStartObject("usage");
        json.WriteNumber("input_tokens", generation.Script.PromptTokens);
        json.WriteNumber("cache_creation_input_tokens", 0);
        json.WriteNumber("cache_read_input_tokens", 0);
        json.WriteNumber("output_tokens", outputTokens);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
