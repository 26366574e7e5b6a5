using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>
/// One streaming API of llama-server as the RealServer tests drive it: the request for an answer of
/// <c>maxTokens</c> tokens, which events carry a generated token, the answer's own token count and the
/// gateway's cut notice. Tests take the API's name as theory data, so another API (Anthropic
/// Messages, Responses, <c>/completion</c>) is one more entry in <see cref="All"/>.
/// </summary>
internal sealed record LlamaApi(
    string Name,
    string Path,
    Func<string, int, string, object> Body,
    Func<string, bool> IsContentLine,
    Func<StreamTranscript, long?> CompletionTokens,
    Func<StreamTranscript, string?> NoticeType,
    Func<StreamTranscript, bool> Completed)
{
    /// <summary>OpenAI Chat Completions: <c>data:</c> chunks with <c>choices[0].delta.content</c>, <c>usage</c>
    /// in the last chunk (asked for with <c>stream_options.include_usage</c>, as the OpenAI SDKs do), <c>data: [DONE]</c> at the end; the gateway's notice is <c>data: {"error": {...}}</c>.</summary>
    public static readonly LlamaApi ChatCompletions = new(
        "chat-completions",
        "/v1/chat/completions",
        (prompt, maxTokens, model) => new
        {
            model,
            stream = true,
            stream_options = new { include_usage = true },
            max_tokens = maxTokens,
            messages = new[] { new { role = "user", content = prompt } },
        },
        line => Data(line) is { } data && data.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
            && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
            && content.ValueKind == JsonValueKind.String && content.GetString()!.Length > 0,
        transcript => transcript.DataEvents.Select(Parse).LastOrDefault(e => e?.TryGetProperty("usage", out var u) == true && u.ValueKind == JsonValueKind.Object)
            ?.GetProperty("usage").GetProperty("completion_tokens").GetInt64(),
        transcript => transcript.DataEvents.Count > 0 && Parse(transcript.DataEvents[^1]) is { } last && last.TryGetProperty("error", out var error)
            ? error.GetProperty("type").GetString()
            : null,
        transcript => transcript.DataEvents.Count > 0 && transcript.DataEvents[^1] == "[DONE]");

    private static readonly LlamaApi[] Apis = [ChatCompletions];

    /// <summary>Theory data: every API the RealServer tests cover.</summary>
    public static TheoryData<string> All => [.. Names];

    public static IEnumerable<string> Names => Apis.Select(a => a.Name);

    public static LlamaApi Named(string name) => Apis.Single(a => a.Name == name);

    public HttpRequestMessage Request(string prompt, string? sessionId, int maxTokens, string model = "tiny", string? authorization = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Path)
        {
            Content = new StringContent(JsonSerializer.Serialize(Body(prompt, maxTokens, model)), Encoding.UTF8, "application/json"),
        };
        if (sessionId is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Session-Id", sessionId);
        }

        if (authorization is not null)
        {
            request.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        }

        return request;
    }

    public int ContentEvents(StreamTranscript transcript) => transcript.Lines.Count(IsContentLine);

    public override string ToString() => Name;

    private static JsonElement? Data(string line) =>
        line.StartsWith("data:", StringComparison.Ordinal) ? Parse(line[5..].TrimStart()) : null;

    private static JsonElement? Parse(string data)
    {
        if (data.Length == 0 || data[0] != '{')
        {
            return null;
        }

        using var document = JsonDocument.Parse(data);
        return document.RootElement.Clone();
    }
}
