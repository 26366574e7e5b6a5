using System.Text;
using System.Text.Json;
using static MockLlm.Generation.JsonFields;

namespace MockLlm.Generation;

/// <summary>What the mock needs from a request body, whatever the protocol.</summary>
/// <param name="MaxTokens">The request's cap; null or &lt;= 0 means no cap.</param>
internal sealed record GenerationRequest(string? Model, bool Stream, string Prompt, int? MaxTokens, bool IncludeUsage)
{
    /// <summary>OpenAI Responses: the request's <c>instructions</c>, which the response object echoes.</summary>
    public string? Instructions { get; init; }

    /// <summary>TGI: <c>parameters.details</c>, whether the end carries the finish reason and counts.</summary>
    public bool Details { get; init; }

    public static GenerationRequest ParseOpenAiChat(JsonElement root)
    {
        var prompt = new StringBuilder();
        foreach (var message in RequiredArray(root, "messages").EnumerateArray())
        {
            RequireObject(message, "messages[]");
            AppendText(prompt, message, "content");
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
}

/// <summary>A request body the mock refuses; its message goes back to the client in a 400.</summary>
internal sealed class InvalidRequestException(string message) : Exception(message);
