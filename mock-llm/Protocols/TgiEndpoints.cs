using System.Text.Json;
using MockLlm.Errors;
using MockLlm.Generation;
using static MockLlm.Generation.JsonFields;

namespace MockLlm.Protocols;

/// <summary>Hugging Face text-generation-inference's native API: <c>POST /generate_stream</c> (SSE) and
/// <c>POST /generate</c> (one body). The path, not the body, says whether it streams.</summary>
internal static class TgiEndpoints
{
    public static IEndpointRouteBuilder MapTgi(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGeneration("/generate_stream", static root => Parse(root, stream: true), static g => new TgiStreamWriter(g), ErrorShape.Tgi);
        endpoints.MapGeneration("/generate", static root => Parse(root, stream: false), static g => new TgiBodyWriter(g), ErrorShape.Tgi);
        return endpoints;
    }

    /// <summary><c>inputs</c> is the prompt; <c>parameters.max_new_tokens</c> the cap; <c>parameters.details</c>
    /// asks for the finish reason and counts. TGI serves one model and takes no model name.</summary>
    internal static GenerationRequest Parse(JsonElement root, bool stream)
    {
        RequireObject(root, "body");
        var inputs = OptionalString(root, "inputs") ?? throw new InvalidRequestException("'inputs' is required and must be a string.");
        int? maxNewTokens = null;
        var details = false;
        if (OptionalObject(root, "parameters") is { } parameters)
        {
            maxNewTokens = OptionalInt(parameters, "max_new_tokens");
            details = OptionalBool(parameters, "details") ?? false;
        }

        return new GenerationRequest(Model: null, stream, inputs, maxNewTokens, IncludeUsage: false) { Details = details };
    }
}
