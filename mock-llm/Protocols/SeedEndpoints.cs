using MockLlm.Generation;

namespace MockLlm.Protocols;

/// <summary>The seed app's original endpoints: GET with the prompt in <c>?query=</c>.</summary>
internal static class SeedEndpoints
{
    public static IEndpointRouteBuilder MapSeed(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/api/sse-stream", static context =>
            GenerationEndpoints.Streamer(context).GenerateAsync(context, FromQuery(context), static _ => new SeedSseWriter()));

        endpoints.MapGet("/api/fetch-stream", static context =>
            GenerationEndpoints.Streamer(context).GenerateAsync(context, FromQuery(context), static _ => new SeedTextWriter()));

        return endpoints;
    }

    private static GenerationRequest FromQuery(HttpContext context) =>
        new(Model: null, Stream: true, Prompt: context.Request.Query["query"].ToString(), MaxTokens: null, IncludeUsage: false);
}
