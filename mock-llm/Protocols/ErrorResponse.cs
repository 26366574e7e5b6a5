using System.Text.Encodings.Web;
using System.Text.Json;

namespace MockLlm.Protocols;

/// <summary>OpenAI's error body, used by every endpoint so clients need one parser.</summary>
internal static class ErrorResponse
{
    // Keeps quotes and angle brackets readable in messages; the body is JSON, never embedded in HTML.
    private static readonly JsonWriterOptions s_jsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task WriteAsync(HttpContext context, int statusCode, string message)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            return;
        }

        response.StatusCode = statusCode;
        response.ContentType = "application/json";
        using (var json = new Utf8JsonWriter(response.BodyWriter, s_jsonOptions))
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            json.WriteString("message", message);
            json.WriteString("type", "invalid_request_error");
            json.WriteNull("param");
            json.WriteNull("code");
            json.WriteEndObject();
            json.WriteEndObject();
        }

        try
        {
            await response.BodyWriter.FlushAsync(context.RequestAborted);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client left before reading its error; nothing to do.
        }
    }
}
