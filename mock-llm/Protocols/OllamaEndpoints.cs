using MockLlm.Generation;

namespace MockLlm.Protocols;

internal static class OllamaEndpoints
{
    public static IEndpointRouteBuilder MapOllama(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPost("/api/chat", static context => Streamer(context).HandleAsync(
            context,
            GenerationRequest.ParseOllamaChat,
            static g => g.Request.Stream ? new OllamaStreamWriter(g, chat: true) : new OllamaResponseWriter(g, chat: true)));

        endpoints.MapPost("/api/generate", static context => Streamer(context).HandleAsync(
            context,
            GenerationRequest.ParseOllamaGenerate,
            static g => g.Request.Stream ? new OllamaStreamWriter(g, chat: false) : new OllamaResponseWriter(g, chat: false)));

        return endpoints;
    }

    private static TokenStreamer Streamer(HttpContext context) => context.RequestServices.GetRequiredService<TokenStreamer>();
}
