using System.Text.Json;

namespace Gateway.Protocols;

/// <summary>OpenAI's error object, which OpenAI-compatible servers and clients share.</summary>
internal static class OpenAiErrors
{
    /// <summary><c>{"error": {"message", "type", "param", "code"}}</c>.</summary>
    public static void Write(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        WriteErrorProperty(json, notice);
        json.WriteEndObject();
    }

    /// <summary>Answers a request of the gateway's own endpoints (stop, savings) with an error in this shape, as the
    /// Chat Completions adapter answers its requests.</summary>
    public static Task WriteResponseAsync(HttpContext context, EndNotice notice, CancellationToken cancellationToken) =>
        ApiAdapters.ChatCompletions.WriteErrorResponseAsync(context, notice, cancellationToken);

    public static void WriteErrorProperty(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject("error");
        json.WriteString("message", notice.Message);
        json.WriteString("type", notice.Type);
        json.WriteNull("param");
        json.WriteString("code", notice.Code);
        json.WriteEndObject();
    }
}
