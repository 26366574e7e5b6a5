using System.Text;
using System.Text.Json;
using MockLlm.Errors;
using MockLlm.Generation;
using static MockLlm.Generation.JsonFields;

namespace MockLlm.Protocols;

/// <summary>Anthropic's Messages API: <c>POST /v1/messages</c>, refusing bad bodies in Anthropic's error shape.</summary>
internal static class AnthropicEndpoints
{
    public static IEndpointRouteBuilder MapAnthropic(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGeneration(
            "/v1/messages", Parse, static g => g.Request.Stream ? new AnthropicStreamWriter(g) : new AnthropicBodyWriter(g), ErrorShape.Anthropic);
        return endpoints;
    }

    /// <summary><c>model</c>, <c>max_tokens</c> and <c>messages</c> are required, as the real API requires them;
    /// <c>system</c> and message <c>content</c> are a string or text blocks.</summary>
    internal static GenerationRequest Parse(JsonElement root)
    {
        RequireObject(root, "body");
        var model = OptionalString(root, "model") ?? throw new InvalidRequestException("model: Field required");
        var maxTokens = OptionalInt(root, "max_tokens") ?? throw new InvalidRequestException("max_tokens: Field required");
        if (maxTokens < 1)
        {
            throw new InvalidRequestException("max_tokens: Input should be greater than or equal to 1");
        }

        var prompt = new StringBuilder();
        AppendText(prompt, root, "system");
        foreach (var message in RequiredArray(root, "messages").EnumerateArray())
        {
            RequireObject(message, "messages[]");
            AppendText(prompt, message, "content");
        }

        return new GenerationRequest(model, OptionalBool(root, "stream") ?? false, prompt.ToString(), maxTokens, IncludeUsage: false);
    }
}
