using System.Text.Json.Serialization;
using Microsoft.Extensions.Options;
using MockLlm.Generation;

namespace MockLlm.Protocols;

internal static class OpenAiEndpoints
{
    // Fixed so /v1/models is byte-for-byte stable across runs.
    private const long ModelsCreated = 1_700_000_000;

    public static IEndpointRouteBuilder MapOpenAi(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGeneration(
            "/v1/chat/completions",
            GenerationRequest.ParseOpenAiChat,
            static g => g.Request.Stream ? new OpenAiStreamWriter(g, OpenAiFlavor.Chat) : new OpenAiResponseWriter(g, OpenAiFlavor.Chat));

        endpoints.MapGeneration(
            "/v1/completions",
            GenerationRequest.ParseOpenAiCompletion,
            static g => g.Request.Stream ? new OpenAiStreamWriter(g, OpenAiFlavor.Completion) : new OpenAiResponseWriter(g, OpenAiFlavor.Completion));

        endpoints.MapGet("/v1/models", static (IOptions<MockLlmOptions> options) =>
        {
            var models = options.Value.Models;
            var data = new ModelCard[models.Length];
            for (var i = 0; i < models.Length; i++)
            {
                data[i] = new ModelCard(models[i], "model", ModelsCreated, "mock-llm");
            }

            return TypedResults.Ok(new ModelList("list", data));
        });

        return endpoints;
    }

    internal sealed record ModelList(
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("data")] ModelCard[] Data);

    internal sealed record ModelCard(
        [property: JsonPropertyName("id")] string Id,
        [property: JsonPropertyName("object")] string Object,
        [property: JsonPropertyName("created")] long Created,
        [property: JsonPropertyName("owned_by")] string OwnedBy);
}
