namespace Gateway.Protocols;

/// <summary>Picks the adapter of a request by its method and path; anything unrecognised is passed through.</summary>
internal static class ApiAdapters
{
    public static readonly ApiAdapter ChatCompletions = new ChatCompletionsAdapter(chat: true);
    public static readonly ApiAdapter Completions = new ChatCompletionsAdapter(chat: false);
    public static readonly ApiAdapter Responses = new ResponsesAdapter();
    public static readonly ApiAdapter Messages = new MessagesAdapter();
    public static readonly ApiAdapter Gemini = new GeminiAdapter();
    public static readonly ApiAdapter OllamaChat = new OllamaAdapter(chat: true);
    public static readonly ApiAdapter OllamaGenerate = new OllamaAdapter(chat: false);
    public static readonly ApiAdapter Tgi = new TgiAdapter();
    public static readonly ApiAdapter LlamaCpp = new LlamaCppAdapter();
    public static readonly ApiAdapter Other = new PassThroughAdapter();

    /// <summary>In the order tried: Ollama's <c>/api/generate</c> before TGI's <c>/generate</c>.</summary>
    internal static readonly ApiAdapter[] Known =
    [
        ChatCompletions, Completions, Responses, Messages, Gemini, OllamaChat, OllamaGenerate, Tgi, LlamaCpp,
    ];

    /// <summary>Every adapter, the pass-through last.</summary>
    public static IEnumerable<ApiAdapter> All => Known.Append(Other);

    /// <summary>The metric labels of every API, for dashboards and tests.</summary>
    public static IEnumerable<string> Labels => Known.Select(a => a.Label).Append(Other.Label).Distinct();

    /// <summary>True for a request whose body is JSON: the only bodies whose facts are read.</summary>
    public static bool IsJsonBody(HttpRequest request) =>
        HttpMethods.IsPost(request.Method) && request.ContentLength != 0
        && request.ContentType is { } type && type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);

    public static ApiAdapter For(HttpRequest request) => For(request.Method, request.Path.Value);

    public static ApiAdapter For(string method, string? path)
    {
        if (!HttpMethods.IsPost(method) || string.IsNullOrEmpty(path))
        {
            return Other;
        }

        foreach (var adapter in Known)
        {
            if (adapter.Matches(path))
            {
                return adapter;
            }
        }

        return Other;
    }
}
