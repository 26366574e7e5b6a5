using System.Text;
using System.Text.Json;
using MockLlm.Generation;
using static MockLlm.Generation.JsonFields;

namespace MockLlm.Protocols;

/// <summary>OpenAI's Responses API: <c>POST /v1/responses</c>.</summary>
internal static class ResponsesEndpoints
{
    public static IEndpointRouteBuilder MapResponses(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGeneration("/v1/responses", Parse, static g => g.Request.Stream ? new ResponsesStreamWriter(g) : new ResponsesBodyWriter(g));
        return endpoints;
    }

    /// <summary><c>input</c> is a string or an array of items whose <c>content</c> is a string or parts with
    /// <c>text</c>; <c>instructions</c> count as prompt too. Items without content (tool outputs) add nothing.</summary>
    internal static GenerationRequest Parse(JsonElement root)
    {
        RequireObject(root, "body");
        var instructions = OptionalString(root, "instructions");
        var prompt = new StringBuilder(instructions);
        if (!root.TryGetProperty("input", out var input))
        {
            throw new InvalidRequestException("'input' is required: a string or an array of input items.");
        }

        switch (input.ValueKind)
        {
            case JsonValueKind.String:
                prompt.Append(input.GetString());
                break;
            case JsonValueKind.Array:
                foreach (var item in input.EnumerateArray())
                {
                    RequireObject(item, "input[]");
                    AppendText(prompt, item, "content");
                }

                break;
            default:
                throw new InvalidRequestException("'input' must be a string or an array of input items.");
        }

        // Responses answers with one JSON body unless asked to stream.
        return new GenerationRequest(
            OptionalString(root, "model"),
            OptionalBool(root, "stream") ?? false,
            prompt.ToString(),
            OptionalInt(root, "max_output_tokens"),
            IncludeUsage: false)
        {
            Instructions = instructions,
        };
    }
}
