using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;

namespace MockLlm.Generation;

/// <summary>Outcome of reading a JSON body: a request, or the status and message to refuse it with.
/// Both null means the client went away while sending it.</summary>
internal readonly record struct BodyReadResult(GenerationRequest? Request, int StatusCode, string? Error);

internal static class RequestBodyReader
{
    /// <summary>Generation bodies are small; a bigger one is a client bug (or abuse), not a prompt.</summary>
    public const long MaxBodyBytes = 1024 * 1024;

    public static async Task<BodyReadResult> ReadAsync(HttpContext context, Func<JsonElement, GenerationRequest> parse)
    {
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeLimit)
        {
            sizeLimit.MaxRequestBodySize = MaxBodyBytes;
        }

        try
        {
            using var document = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
            return new BodyReadResult(parse(document.RootElement), StatusCodes.Status200OK, null);
        }
        catch (JsonException ex)
        {
            return new BodyReadResult(null, StatusCodes.Status400BadRequest, $"The request body is not valid JSON: {ex.Message}");
        }
        catch (InvalidRequestException ex)
        {
            return new BodyReadResult(null, StatusCodes.Status400BadRequest, ex.Message);
        }
        catch (BadHttpRequestException ex)
        {
            // Kestrel's body limit (413) and malformed framing land here.
            return new BodyReadResult(null, ex.StatusCode, ex.Message);
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            return new BodyReadResult(null, 0, null);
        }
    }
}
