using System.Text;
using System.Text.Json;
using MockLlm.Errors;
using MockLlm.Generation;
using static MockLlm.Generation.JsonFields;

namespace MockLlm.Protocols;

/// <summary>Gemini's <c>POST /v1beta/models/{model}:generateContent</c> and <c>:streamGenerateContent?alt=sse</c>.
/// The model and the method share one path segment, so the route captures both and splits at the last colon.</summary>
internal static class GeminiEndpoints
{
    private const string StreamMethod = "streamGenerateContent";
    private const string UnaryMethod = "generateContent";

    public static IEndpointRouteBuilder MapGemini(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/v1beta/models/{modelAndMethod}", static context => HandleAsync(context));
        return endpoints;
    }

    private static Task HandleAsync(HttpContext context)
    {
        var streamer = GenerationEndpoints.Streamer(context);
        var modelAndMethod = context.Request.RouteValues["modelAndMethod"] as string ?? string.Empty;
        var colon = modelAndMethod.LastIndexOf(':');
        var model = colon > 0 ? modelAndMethod[..colon] : string.Empty;
        var method = colon > 0 ? modelAndMethod[(colon + 1)..] : string.Empty;
        bool stream;
        switch (method)
        {
            case StreamMethod:
                stream = true;
                break;
            case UnaryMethod:
                stream = false;
                break;
            default:
                return streamer.RejectAsync(context, StatusCodes.Status404NotFound,
                    $"Method '{method}' is not found for model '{model}'; use {UnaryMethod} or {StreamMethod}.", ErrorShape.Gemini);
        }

        // Without alt=sse Google streams one JSON array; the mock speaks only the SSE form every SDK asks for.
        if (stream && !string.Equals(context.Request.Query["alt"], "sse", StringComparison.Ordinal))
        {
            return streamer.RejectAsync(context, StatusCodes.Status400BadRequest,
                $"Only alt=sse is supported for {StreamMethod}.", ErrorShape.Gemini);
        }

        return streamer.HandleAsync(
            context,
            root => Parse(root, model, stream),
            static g => g.Request.Stream ? new GeminiStreamWriter(g) : new GeminiBodyWriter(g),
            ErrorShape.Gemini);
    }

    /// <summary><c>contents[].parts[].text</c> and <c>systemInstruction.parts[].text</c> make the prompt;
    /// <c>generationConfig.maxOutputTokens</c> is the cap. The REST API takes snake_case names too.</summary>
    internal static GenerationRequest Parse(JsonElement root, string model, bool stream)
    {
        RequireObject(root, "body");
        var prompt = new StringBuilder();
        if ((OptionalObject(root, "systemInstruction") ?? OptionalObject(root, "system_instruction")) is { } system)
        {
            AppendText(prompt, system, "parts");
        }

        foreach (var content in RequiredArray(root, "contents").EnumerateArray())
        {
            RequireObject(content, "contents[]");
            AppendText(prompt, content, "parts");
        }

        int? maxOutputTokens = null;
        if ((OptionalObject(root, "generationConfig") ?? OptionalObject(root, "generation_config")) is { } config)
        {
            maxOutputTokens = OptionalInt(config, "maxOutputTokens") ?? OptionalInt(config, "max_output_tokens");
        }

        return new GenerationRequest(model, stream, prompt.ToString(), maxOutputTokens, IncludeUsage: false);
    }
}
