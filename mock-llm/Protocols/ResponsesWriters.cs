using System.Buffers;
using System.Text;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>Responses SSE: named events whose <c>type</c> repeats the name and whose <c>sequence_number</c>
/// counts up from 0: created, in_progress, the message item and its text part, one
/// <c>response.output_text.delta</c> per token, the done events, then <c>response.completed</c>
/// (or <c>response.incomplete</c> when <c>max_output_tokens</c> stopped it).</summary>
internal sealed class ResponsesStreamWriter : SseWriter
{
    private readonly GenerationContext _generation;
    private readonly byte[] _deltaPrefix;
    private readonly byte[] _deltaMiddle;
    private int _sequence;

    public ResponsesStreamWriter(GenerationContext generation)
    {
        _generation = generation;

        // Built once per request so each token is span copies plus the sequence number; tokens are JSON-safe ASCII.
        _deltaPrefix = Encoding.UTF8.GetBytes(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":");
        _deltaMiddle = Encoding.UTF8.GetBytes(
            $",\"item_id\":\"{ResponsesShapes.ItemId(generation)}\",\"output_index\":0,\"content_index\":0,\"delta\":\"");
    }

    public override void WriteStart(IBufferWriter<byte> output)
    {
        var json = BeginSequenced(output, "response.created");
        json.WritePropertyName("response");
        ResponsesShapes.WriteResponse(json, _generation, finished: false, text: default, outputTokens: 0);
        EndEvent(output, json);

        json = BeginSequenced(output, "response.in_progress");
        json.WritePropertyName("response");
        ResponsesShapes.WriteResponse(json, _generation, finished: false, text: default, outputTokens: 0);
        EndEvent(output, json);

        json = BeginSequenced(output, "response.output_item.added");
        json.WriteNumber("output_index", 0);
        json.WritePropertyName("item");
        ResponsesShapes.WriteMessageItem(json, _generation, finished: false, text: default);
        EndEvent(output, json);

        json = BeginSequenced(output, "response.content_part.added");
        WritePartPosition(json);
        json.WritePropertyName("part");
        ResponsesShapes.WriteTextPart(json, []);
        EndEvent(output, json);
    }

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        output.Write(_deltaPrefix);
        WriteNumber(output, _sequence++);
        output.Write(_deltaMiddle);
        output.Write(token);
        output.Write("\",\"logprobs\":[]}\n\n"u8);
    }

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        var buffer = new ArrayBufferWriter<byte>();
        _generation.Script.WriteText(buffer, stats.TokensSent);
        var text = buffer.WrittenSpan;

        var json = BeginSequenced(output, "response.output_text.done");
        WritePartPosition(json);
        json.WriteString("text", text);
        json.WriteStartArray("logprobs");
        json.WriteEndArray();
        EndEvent(output, json);

        json = BeginSequenced(output, "response.content_part.done");
        WritePartPosition(json);
        json.WritePropertyName("part");
        ResponsesShapes.WriteTextPart(json, text);
        EndEvent(output, json);

        json = BeginSequenced(output, "response.output_item.done");
        json.WriteNumber("output_index", 0);
        json.WritePropertyName("item");
        ResponsesShapes.WriteMessageItem(json, _generation, finished: true, text);
        EndEvent(output, json);

        json = BeginSequenced(output, _generation.StoppedByCap ? "response.incomplete" : "response.completed");
        json.WritePropertyName("response");
        ResponsesShapes.WriteResponse(json, _generation, finished: true, text, stats.TokensSent);
        EndEvent(output, json);
    }

    private void WritePartPosition(Utf8JsonWriter json)
    {
        json.WriteString("item_id", ResponsesShapes.ItemId(_generation));
        json.WriteNumber("output_index", 0);
        json.WriteNumber("content_index", 0);
    }

    /// <summary>An event whose data carries the next <c>sequence_number</c> after its type.</summary>
    private Utf8JsonWriter BeginSequenced(IBufferWriter<byte> output, string type)
    {
        var json = BeginEvent(output, type);
        json.WriteNumber("sequence_number", _sequence++);
        return json;
    }
}

/// <summary>The response object alone, for <c>"stream": false</c>.</summary>
internal sealed class ResponsesBodyWriter(GenerationContext generation) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        using var json = new Utf8JsonWriter(output);
        ResponsesShapes.WriteResponse(json, Generation, finished: true, text, stats.TokensSent);
    }
}

internal static class ResponsesShapes
{
    public static string ResponseId(GenerationContext generation) => "resp_" + generation.Id;

    public static string ItemId(GenerationContext generation) => "msg_" + generation.Id;

    /// <summary>The response object with every field the official SDKs read (OpenAI .NET 2.15 needs
    /// <c>output</c> as an array and <c>parallel_tool_calls</c> as a boolean, never null).</summary>
    /// <param name="finished">False while generating: status <c>in_progress</c>, no output, no usage.</param>
    public static void WriteResponse(
        Utf8JsonWriter json, GenerationContext generation, bool finished, ReadOnlySpan<byte> text, int outputTokens)
    {
        var request = generation.Request;
        json.WriteStartObject();
        json.WriteString("id", ResponseId(generation));
        json.WriteString("object", "response");
        json.WriteNumber("created_at", generation.CreatedUnixSeconds);
        json.WriteString("status", !finished ? "in_progress" : generation.StoppedByCap ? "incomplete" : "completed");
        json.WriteBoolean("background", false);
        json.WriteNull("error");
        if (finished && generation.StoppedByCap)
        {
            json.WriteStartObject("incomplete_details");
            json.WriteString("reason", "max_output_tokens");
            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("incomplete_details");
        }

        WriteStringOrNull(json, "instructions", request.Instructions);
        if (request.MaxTokens is { } maxTokens)
        {
            json.WriteNumber("max_output_tokens", maxTokens);
        }
        else
        {
            json.WriteNull("max_output_tokens");
        }

        json.WriteNull("max_tool_calls");
        json.WriteString("model", generation.Model);
        json.WriteStartArray("output");
        if (finished)
        {
            WriteMessageItem(json, generation, finished: true, text);
        }

        json.WriteEndArray();
        json.WriteBoolean("parallel_tool_calls", true);
        json.WriteNull("previous_response_id");
        json.WriteNull("prompt_cache_key");
        json.WriteStartObject("reasoning");
        json.WriteNull("effort");
        json.WriteNull("summary");
        json.WriteEndObject();
        json.WriteNull("safety_identifier");
        json.WriteString("service_tier", "default");
        json.WriteBoolean("store", false);
        json.WriteNumber("temperature", 1.0);
        json.WriteStartObject("text");
        json.WriteStartObject("format");
        json.WriteString("type", "text");
        json.WriteEndObject();
        json.WriteString("verbosity", "medium");
        json.WriteEndObject();
        json.WriteString("tool_choice", "auto");
        json.WriteStartArray("tools");
        json.WriteEndArray();
        json.WriteNumber("top_logprobs", 0);
        json.WriteNumber("top_p", 1.0);
        json.WriteString("truncation", "disabled");
        if (finished)
        {
            var inputTokens = generation.Script.PromptTokens;
            json.WriteStartObject("usage");
            json.WriteNumber("input_tokens", inputTokens);
            json.WriteStartObject("input_tokens_details");
            json.WriteNumber("cached_tokens", 0);
            json.WriteEndObject();
            json.WriteNumber("output_tokens", outputTokens);
            json.WriteStartObject("output_tokens_details");
            json.WriteNumber("reasoning_tokens", 0);
            json.WriteEndObject();
            json.WriteNumber("total_tokens", inputTokens + outputTokens);
            json.WriteEndObject();
        }
        else
        {
            json.WriteNull("usage");
        }

        json.WriteNull("user");
        json.WriteStartObject("metadata");
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <param name="finished">False while generating: status <c>in_progress</c> and no content yet.</param>
    public static void WriteMessageItem(Utf8JsonWriter json, GenerationContext generation, bool finished, ReadOnlySpan<byte> text)
    {
        json.WriteStartObject();
        json.WriteString("id", ItemId(generation));
        json.WriteString("type", "message");
        json.WriteString("status", !finished ? "in_progress" : generation.StoppedByCap ? "incomplete" : "completed");
        json.WriteStartArray("content");
        if (finished)
        {
            WriteTextPart(json, text);
        }

        json.WriteEndArray();
        json.WriteString("role", "assistant");
        json.WriteEndObject();
    }

    public static void WriteTextPart(Utf8JsonWriter json, ReadOnlySpan<byte> text)
    {
        json.WriteStartObject();
        json.WriteString("type", "output_text");
        json.WriteStartArray("annotations");
        json.WriteEndArray();
        json.WriteStartArray("logprobs");
        json.WriteEndArray();
        json.WriteString("text", text);
        json.WriteEndObject();
    }

    private static void WriteStringOrNull(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }
}
