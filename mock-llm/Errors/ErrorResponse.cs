using System.Text.Encodings.Web;
using System.Text.Json;

namespace MockLlm.Errors;

/// <summary>Whose error body a refused request gets: each API's official SDK raises only on its own
/// shape, so an endpoint answers in the shape of the API it imitates.</summary>
internal enum ErrorShape
{
    /// <summary><c>{"error":{"message","type","param","code"}}</c>; also what the Ollama and seed endpoints send.</summary>
    OpenAi,

    /// <summary><c>{"type":"error","error":{"type","message"}}</c>.</summary>
    Anthropic,

    /// <summary><c>{"error":{"code","message","status"}}</c> with Google's canonical status names.</summary>
    Gemini,

    /// <summary>Hugging Face TGI: <c>{"error","error_type"}</c>.</summary>
    Tgi,

    /// <summary>llama.cpp's server: <c>{"error":{"code","message","type"}}</c>.</summary>
    LlamaCpp,
}

internal static class ErrorResponse
{
    // Keeps quotes and angle brackets readable in messages; the body is JSON, never embedded in HTML.
    private static readonly JsonWriterOptions s_jsonOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static async Task WriteAsync(HttpContext context, int statusCode, string message, ErrorShape shape = ErrorShape.OpenAi)
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
            Write(json, statusCode, message, shape);
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

    private static void Write(Utf8JsonWriter json, int statusCode, string message, ErrorShape shape)
    {
        json.WriteStartObject();
        switch (shape)
        {
            case ErrorShape.Anthropic:
                json.WriteString("type", "error");
                json.WriteStartObject("error");
                json.WriteString("type", statusCode switch
                {
                    StatusCodes.Status404NotFound => "not_found_error",
                    StatusCodes.Status413PayloadTooLarge => "request_too_large",
                    < 500 => "invalid_request_error",
                    _ => "api_error",
                });
                json.WriteString("message", message);
                json.WriteEndObject();
                break;
            case ErrorShape.Gemini:
                WriteCodedError(json, statusCode, message, "status", statusCode switch
                {
                    StatusCodes.Status404NotFound => "NOT_FOUND",
                    < 500 => "INVALID_ARGUMENT",
                    _ => "INTERNAL",
                });
                break;
            case ErrorShape.Tgi:
                json.WriteString("error", message);
                json.WriteString("error_type", statusCode < 500 ? "validation" : "generation");
                break;
            case ErrorShape.LlamaCpp:
                WriteCodedError(json, statusCode, message, "type", statusCode switch
                {
                    StatusCodes.Status404NotFound => "not_found_error",
                    < 500 => "invalid_request_error",
                    _ => "server_error",
                });
                break;
            default:
                json.WriteStartObject("error");
                json.WriteString("message", message);
                json.WriteString("type", "invalid_request_error");
                json.WriteNull("param");
                json.WriteNull("code");
                json.WriteEndObject();
                break;
        }

        json.WriteEndObject();
    }

    /// <summary>Gemini's and llama.cpp's <c>"error"</c> object: the HTTP status as <c>code</c>, the message, and
    /// the API's own name for the kind of error.</summary>
    private static void WriteCodedError(Utf8JsonWriter json, int statusCode, string message, string kindField, string kind)
    {
        json.WriteStartObject("error");
        json.WriteNumber("code", statusCode);
        json.WriteString("message", message);
        json.WriteString(kindField, kind);
        json.WriteEndObject();
    }
}
