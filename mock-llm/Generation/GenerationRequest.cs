using System.Text;
using System.Text.Json;

namespace MockLlm.Generation;

/// <summary>What the mock needs from a request body, whatever the protocol.</summary>
/// <param name="MaxTokens">The request's cap; null or &lt;= 0 means no cap.</param>
internal sealed record GenerationRequest(string? Model, bool Stream, string Prompt, int? MaxTokens, bool IncludeUsage)
{
    public static GenerationRequest ParseOpenAiChat(JsonElement root)
    {
        var prompt = new StringBuilder();
        foreach (var message in RequiredArray(root, "messages").EnumerateArray())
        {
            RequireObject(message, "messages[]");
            AppendContent(prompt, message);
        }

        return ParseOpenAiCommon(root, prompt.ToString());
    }

    public static GenerationRequest ParseOpenAiCompletion(JsonElement root)
    {
        RequireObject(root, "body");
        string promptText;
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
        {
            promptText = string.Empty;
        }
        else if (prompt.ValueKind == JsonValueKind.String)
        {
            promptText = prompt.GetString()!;
        }
        else if (prompt.ValueKind == JsonValueKind.Array)
        {
            var text = new StringBuilder();
            foreach (var part in prompt.EnumerateArray())
            {
                text.Append(part.ValueKind == JsonValueKind.String
                    ? part.GetString()
                    : throw new InvalidRequestException("'prompt' must be a string or an array of strings."));
            }

            promptText = text.ToString();
        }
        else
        {
            throw new InvalidRequestException("'prompt' must be a string or an array of strings.");
        }

        return ParseOpenAiCommon(root, promptText);
    }

    public static GenerationRequest ParseOllamaChat(JsonElement root)
    {
        var prompt = new StringBuilder();
        foreach (var message in RequiredArray(root, "messages").EnumerateArray())
        {
            RequireObject(message, "messages[]");
            prompt.Append(OptionalString(message, "content"));
        }

        return ParseOllamaCommon(root, prompt.ToString());
    }

    public static GenerationRequest ParseOllamaGenerate(JsonElement root)
    {
        RequireObject(root, "body");
        return ParseOllamaCommon(root, OptionalString(root, "prompt") ?? string.Empty);
    }

    private static GenerationRequest ParseOpenAiCommon(JsonElement root, string prompt)
    {
        // max_completion_tokens supersedes the deprecated max_tokens when both are sent.
        var maxTokens = OptionalInt(root, "max_completion_tokens") ?? OptionalInt(root, "max_tokens");
        var includeUsage = false;
        if (OptionalObject(root, "stream_options") is { } streamOptions)
        {
            includeUsage = OptionalBool(streamOptions, "include_usage") ?? false;
        }

        return new GenerationRequest(
            OptionalString(root, "model"), OptionalBool(root, "stream") ?? false, prompt, maxTokens, includeUsage);
    }

    private static GenerationRequest ParseOllamaCommon(JsonElement root, string prompt)
    {
        int? numPredict = null;
        if (OptionalObject(root, "options") is { } options)
        {
            numPredict = OptionalInt(options, "num_predict");
        }

        // Ollama streams unless told not to.
        return new GenerationRequest(
            OptionalString(root, "model"), OptionalBool(root, "stream") ?? true, prompt, numPredict, IncludeUsage: false);
    }

    private static void AppendContent(StringBuilder prompt, JsonElement message)
    {
        if (!message.TryGetProperty("content", out var content))
        {
            return;
        }

        switch (content.ValueKind)
        {
            case JsonValueKind.Null:
                return;
            case JsonValueKind.String:
                prompt.Append(content.GetString());
                return;
            case JsonValueKind.Array:
                // Content parts: only text parts contribute to the prompt.
                foreach (var part in content.EnumerateArray())
                {
                    RequireObject(part, "content[]");
                    prompt.Append(OptionalString(part, "text"));
                }

                return;
            default:
                throw new InvalidRequestException("'content' must be a string, an array of content parts or null.");
        }
    }

    private static void RequireObject(JsonElement element, string name)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException($"'{name}' must be a JSON object.");
        }
    }

    private static JsonElement RequiredArray(JsonElement root, string name)
    {
        RequireObject(root, "body");
        if (!root.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidRequestException($"'{name}' is required and must be an array.");
        }

        return value;
    }

    private static string? OptionalString(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new InvalidRequestException($"'{name}' must be a string.");

    private static bool? OptionalBool(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
        : throw new InvalidRequestException($"'{name}' must be a boolean.");

    private static int? OptionalInt(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) ? number
        : throw new InvalidRequestException($"'{name}' must be an integer.");

    private static JsonElement? OptionalObject(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Object ? value
        : throw new InvalidRequestException($"'{name}' must be an object.");
}

/// <summary>A request body the mock refuses; its message goes back to the client in a 400.</summary>
internal sealed class InvalidRequestException(string message) : Exception(message);
