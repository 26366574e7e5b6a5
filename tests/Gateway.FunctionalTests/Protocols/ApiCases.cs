using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;

namespace Gateway.Tests.Protocols;

/// <summary>The error a client found at the end of its stream, read from its API's own shape.</summary>
internal sealed record NativeError(string? Type, string? Code, string Message);

/// <summary>
/// One streaming API as a raw client speaks it (for the APIs no official .NET SDK is served for, and to
/// check every API's wire shape): its request, how its stream is read, and where its error sits.
/// </summary>
internal sealed class ApiCase(string name, string label, string path, bool ndjson, Func<string, string, int, string> body,
    Func<string?, JsonElement, NativeError?> error)
{
    public static readonly ApiCase ChatCompletions = new("chat_completions", "chat_completions", "/v1/chat/completions", false,
        (model, prompt, cap) => Json(new { model, stream = true, max_tokens = cap, messages = new[] { new { role = "user", content = prompt } } }),
        OpenAiError);

    public static readonly ApiCase Completions = new("completions", "completions", "/v1/completions", false,
        (model, prompt, cap) => Json(new { model, stream = true, max_tokens = cap, prompt }),
        OpenAiError);

    public static readonly ApiCase Responses = new("responses", "responses", "/v1/responses", false,
        (model, prompt, cap) => Json(new { model, stream = true, max_output_tokens = cap, input = prompt }),
        (name, data) => name == "error" && data.TryGetProperty("code", out var code)
            ? new NativeError(data.GetProperty("error").GetProperty("type").GetString(), code.GetString(), data.GetProperty("message").GetString()!)
            : null);

    public static readonly ApiCase Messages = new("messages", "messages", "/v1/messages", false,
        (model, prompt, cap) => Json(new { model, stream = true, max_tokens = cap, messages = new[] { new { role = "user", content = prompt } } }),
        (name, data) => name == "error" && data.GetProperty("type").GetString() == "error"
            ? new NativeError(data.GetProperty("error").GetProperty("type").GetString(), null, data.GetProperty("error").GetProperty("message").GetString()!)
            : null);

    public static readonly ApiCase Gemini = new("gemini", "gemini", "/v1beta/models/{model}:streamGenerateContent?alt=sse", false,
        (_, prompt, cap) => Json(new { contents = new[] { new { role = "user", parts = new[] { new { text = prompt } } } }, generationConfig = new { maxOutputTokens = cap } }),
        (_, data) => data.TryGetProperty("error", out var e)
            ? new NativeError(e.GetProperty("details")[0].GetProperty("metadata").GetProperty("type").GetString(),
                e.GetProperty("details")[0].GetProperty("reason").GetString(), e.GetProperty("message").GetString()!)
            : null);

    public static readonly ApiCase Tgi = new("tgi", "tgi", "/generate_stream", false,
        (_, prompt, cap) => Json(new { inputs = prompt, parameters = new { max_new_tokens = cap } }),
        (_, data) => data.TryGetProperty("error_type", out var type)
            ? new NativeError(type.GetString(), null, data.GetProperty("error").GetString()!)
            : null);

    public static readonly ApiCase LlamaCpp = new("llamacpp", "llamacpp", "/completion", false,
        (_, prompt, cap) => Json(new { prompt, n_predict = cap, stream = true }),
        (_, data) => data.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object
            ? new NativeError(e.GetProperty("type").GetString(), null, e.GetProperty("message").GetString()!)
            : null);

    public static readonly ApiCase OllamaChat = new("ollama_chat", "ollama", "/api/chat", true,
        (model, prompt, cap) => Json(new { model, messages = new[] { new { role = "user", content = prompt } }, options = new { num_predict = cap } }),
        (_, data) => data.TryGetProperty("error", out var e) ? new NativeError(null, null, e.GetString()!) : null);

    public static readonly ApiCase OllamaGenerate = new("ollama_generate", "ollama", "/api/generate", true,
        (model, prompt, cap) => Json(new { model, prompt, options = new { num_predict = cap } }),
        (_, data) => data.TryGetProperty("error", out var e) ? new NativeError(null, null, e.GetString()!) : null);

    public static readonly ApiCase[] All = [ChatCompletions, Completions, Responses, Messages, Gemini, Tgi, LlamaCpp, OllamaChat, OllamaGenerate];

    public static ApiCase Named(string name) => All.Single(c => c.Name == name);

    public static TheoryData<string> Names() => [.. All.Select(c => c.Name)];

    public string Name => name;

    /// <summary>The <c>api</c> metric label.</summary>
    public string Label => label;

    public bool Ndjson => ndjson;

    public HttpRequestMessage Request(string model, string prompt, int cap, string? sessionId, IDictionary<string, string>? headers = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path.Replace("{model}", model, StringComparison.Ordinal))
        {
            Content = new StringContent(body(model, prompt, cap), Encoding.UTF8, "application/json"),
        };
        if (sessionId is not null)
        {
            request.Headers.Add("X-Session-Id", sessionId);
        }

        foreach (var (header, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.Add(header, value);
        }

        return request;
    }

    /// <summary>The events of a body as the API's clients parse them: SSE (name and data) or NDJSON lines.</summary>
    public async Task<List<(string? Name, string Data)>> ReadEventsAsync(Stream stream)
    {
        var events = new List<(string?, string)>();
        if (ndjson)
        {
            using var reader = new StreamReader(stream);
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line.Length > 0)
                {
                    events.Add((null, line));
                }
            }

            return events;
        }

        await foreach (var item in SseParser.Create(stream).EnumerateAsync())
        {
            events.Add((item.EventType == SseParser.EventTypeDefault ? null : item.EventType, item.Data));
        }

        return events;
    }

    /// <summary>The error in the last event, or null if it is not one.</summary>
    public NativeError? ErrorIn((string? Name, string Data) last)
    {
        try
        {
            using var json = JsonDocument.Parse(last.Data);
            return json.RootElement.ValueKind == JsonValueKind.Object ? error(last.Name, json.RootElement.Clone()) : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public override string ToString() => name;

    private static NativeError? OpenAiError(string? name, JsonElement data) =>
        data.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object
            ? new NativeError(e.GetProperty("type").GetString(), e.GetProperty("code").GetString(), e.GetProperty("message").GetString()!)
            : null;

    private static string Json(object value) => JsonSerializer.Serialize(value);
}
