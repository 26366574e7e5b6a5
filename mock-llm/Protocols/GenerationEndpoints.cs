using System.Text.Json;
using MockLlm.Errors;
using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>What every generating endpoint shares: a POST whose JSON body the API's parser turns into a
/// request, generated through the API's writer, refusals in the API's error shape.</summary>
internal static class GenerationEndpoints
{
    public static IEndpointConventionBuilder MapGeneration(
        this IEndpointRouteBuilder endpoints,
        string pattern,
        Func<JsonElement, GenerationRequest> parse,
        Func<GenerationContext, ChunkWriter> createWriter,
        ErrorShape errorShape = ErrorShape.OpenAi)
    {
        RequestDelegate handle = context => Streamer(context).HandleAsync(context, parse, createWriter, errorShape);
        return endpoints.MapPost(pattern, handle);
    }

    public static TokenStreamer Streamer(HttpContext context) => context.RequestServices.GetRequiredService<TokenStreamer>();
}
