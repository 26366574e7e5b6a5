using MockLlm.Generation;

namespace MockLlm.Protocols;

internal static class OllamaEndpoints
{
    public static IEndpointRouteBuilder MapOllama(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGeneration(
            "/api/chat",
            GenerationRequest.ParseOllamaChat,
            static g => g.Request.Stream ? new OllamaStreamWriter(g, chat: true) : new OllamaResponseWriter(g, chat: true));

        endpoints.MapGeneration(
            "/api/generate",
            GenerationRequest.ParseOllamaGenerate,
            static g => g.Request.Stream ? new OllamaStreamWriter(g, chat: false) : new OllamaResponseWriter(g, chat: false));

        return endpoints;
    }
}
