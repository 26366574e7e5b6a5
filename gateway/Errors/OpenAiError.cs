using System.Buffers;
using System.Text.Json;

namespace Gateway.Errors;

/// <summary>
/// Errors in the shapes OpenAI-compatible clients understand: a JSON body for a response that has not
/// started, one SSE <c>data:</c> event or one NDJSON line for a stream that has.
/// </summary>
internal static class OpenAiError
{
    public static byte[] JsonBody(string message, string type, string code)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            WriteErrorObject(json, message, type, code);
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary><c>data: {"error": {...}}</c> and the blank line that ends the event: what OpenAI SDKs surface as an error.</summary>
    public static byte[] SseEvent(string message, string type, string code)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write("data: "u8);
        using (var json = new Utf8JsonWriter(buffer))
        {
            WriteErrorObject(json, message, type, code);
        }

        buffer.Write("\n\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary><c>{"error": "..."}</c> and a newline: how Ollama reports an error inside a stream.</summary>
    public static byte[] NdjsonLine(string message)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("error", message);
            json.WriteEndObject();
        }

        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Answers with a JSON error, keeping headers already set (such as <c>Retry-After</c>).
    /// Only valid before the response has started.</summary>
    public static async Task WriteResponseAsync(HttpContext context, int statusCode, string message, string type, string code, CancellationToken cancellationToken)
    {
        var body = JsonBody(message, type, code);
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, cancellationToken);
    }

    private static void WriteErrorObject(Utf8JsonWriter json, string message, string type, string code)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteString("message", message);
        json.WriteString("type", type);
        json.WriteNull("param");
        json.WriteString("code", code);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}
