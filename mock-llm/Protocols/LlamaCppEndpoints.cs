using System.Text.Json;
using MockLlm.Errors;
using MockLlm.Generation;
using static MockLlm.Generation.JsonFields;

namespace MockLlm.Protocols;

/// <summary>llama.cpp server's native <c>POST /completion</c> (its OpenAI-compatible routes are the OpenAI endpoints).</summary>
internal static class LlamaCppEndpoints
{
    public static IEndpointRouteBuilder MapLlamaCpp(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGeneration(
            "/completion", Parse, static g => g.Request.Stream ? new LlamaCppStreamWriter(g) : new LlamaCppBodyWriter(g), ErrorShape.LlamaCpp);
        return endpoints;
    }

    /// <summary><c>prompt</c> (a string) is required; <c>n_predict</c> is the cap, -1 or absent for none.
    /// llama-server ignores <c>model</c> here, but a client may name one and the ledger records it.</summary>
    internal static GenerationRequest Parse(JsonElement root)
    {
        RequireObject(root, "body");
        var prompt = OptionalString(root, "prompt") ?? throw new InvalidRequestException("\"prompt\" must be provided");
        return new GenerationRequest(
            OptionalString(root, "model"), OptionalBool(root, "stream") ?? false, prompt, OptionalInt(root, "n_predict"), IncludeUsage: false);
    }
}
