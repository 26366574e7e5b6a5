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

    /// <summary>Anthropic Messages: <c>content_block_delta</c> events, the output total in <c>message_delta.usage</c>,
    /// <c>message_stop</c> at the end; the gateway's notice is <c>event: error</c> with <c>{"type":"error","error":{...}}</c>.</summary>
    public static readonly LlamaApi Messages = new(
        "messages",
        "/v1/messages",
        (prompt, maxTokens, model) => new { model, stream = true, max_tokens = maxTokens, messages = new[] { new { role = "user", content = prompt } } },
        line => Data(line) is { } data && Type(data) == "content_block_delta"
            && data.GetProperty("delta").TryGetProperty("text", out var text) && text.GetString()!.Length > 0,
        transcript => Events(transcript).LastOrDefault(e => Type(e) == "message_delta") is { ValueKind: JsonValueKind.Object } delta
            ? delta.GetProperty("usage").GetProperty("output_tokens").GetInt64()
            : null,
        NoticeOf,
        transcript => Events(transcript).LastOrDefault() is { ValueKind: JsonValueKind.Object } last && Type(last) == "message_stop");

    /// <summary>OpenAI Responses: <c>response.output_text.delta</c> events, the count in <c>response.completed</c>'s
    /// <c>usage.output_tokens</c>; the gateway's notice is an <c>error</c> event.</summary>
    public static readonly LlamaApi Responses = new(
        "responses",
        "/v1/responses",
        (prompt, maxTokens, model) => new { model, stream = true, max_output_tokens = maxTokens, input = prompt },
        line => Data(line) is { } data && Type(data) == "response.output_text.delta" && data.GetProperty("delta").GetString()!.Length > 0,
        transcript => Events(transcript).LastOrDefault(e => Type(e) is "response.completed" or "response.incomplete") is { ValueKind: JsonValueKind.Object } done
            ? done.GetProperty("response").GetProperty("usage").GetProperty("output_tokens").GetInt64()
            : null,
        NoticeOf,
        transcript => Events(transcript).LastOrDefault() is { ValueKind: JsonValueKind.Object } last && Type(last) is "response.completed" or "response.incomplete");

    /// <summary>llama.cpp's native <c>/completion</c>: <c>content</c> events, then <c>stop: true</c> with
    /// <c>tokens_predicted</c>; the gateway's notice is <c>data: {"error": {"code","message","type"}}</c>.</summary>
    public static readonly LlamaApi Completion = new(
        "completion",
        "/completion",
        (prompt, maxTokens, model) => new { model, prompt, n_predict = maxTokens, stream = true }, // llama-server takes an optional model name
        line => Data(line) is { } data && data.TryGetProperty("content", out var content) && content.GetString()!.Length > 0
            && !(data.TryGetProperty("stop", out var stop) && stop.ValueKind == JsonValueKind.True),
        transcript => Events(transcript).LastOrDefault(e => e.TryGetProperty("stop", out var stop) && stop.ValueKind == JsonValueKind.True) is { ValueKind: JsonValueKind.Object } last
            ? last.GetProperty("tokens_predicted").GetInt64()
            : null,
        NoticeOf,
        transcript => Events(transcript).LastOrDefault() is { ValueKind: JsonValueKind.Object } last && last.TryGetProperty("stop", out var stop) && stop.ValueKind == JsonValueKind.True);

    private static readonly LlamaApi[] Apis = [ChatCompletions, Messages, Responses, Completion];

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

    /// <summary>The JSON objects of a transcript's <c>data:</c> events, in order.</summary>
    private static List<JsonElement> Events(StreamTranscript transcript) =>
        [.. transcript.DataEvents.Select(Parse).Where(e => e is not null).Select(e => e!.Value)];

    private static string? Type(JsonElement data) =>
        data.TryGetProperty("type", out var type) && type.ValueKind == JsonValueKind.String ? type.GetString() : null;

    /// <summary>The type of the error in the last event: every API's notice carries an <c>error</c> object with one.</summary>
    private static string? NoticeOf(StreamTranscript transcript) =>
        Events(transcript).LastOrDefault() is { ValueKind: JsonValueKind.Object } last && last.TryGetProperty("error", out var error)
            && error.ValueKind == JsonValueKind.Object && error.TryGetProperty("type", out var type)
            ? type.GetString()
            : null;

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
