using System.Buffers;
using System.Text.Json;

namespace Gateway.Errors;

/// <summary>The gateway's own endpoints' errors (stop, admin, limits) in OpenAI's shape; a proxied API's
/// errors are written by its adapter (Protocols/).</summary>
internal static class OpenAiError
{
    private static byte[] JsonBody(string message, string type, string code)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var json = new Utf8JsonWriter(buffer))
        {
            WriteErrorObject(json, message, type, code);
        }

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
