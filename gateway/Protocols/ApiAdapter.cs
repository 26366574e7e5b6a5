using System.Buffers;
using System.Collections.Concurrent;
using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>The streaming APIs the gateway understands; <see cref="ApiAdapter.Label"/> is the metric label.</summary>
internal enum Api
{
    ChatCompletions,
    Completions,
    Responses,
    Messages,
    Gemini,
    Tgi,
    LlamaCpp,
    Ollama,
    Other,
}

/// <summary>
/// One streaming API, everything the gateway knows of it: how its requests are recognised, where their facts
/// are (<see cref="RequestFields"/>), how a request is changed to ask for usage (<see cref="AskForUsage"/>),
/// how its streamed events are read (<see cref="Reader"/>) and its whole answers (<see cref="WholeBody"/>), what
/// a real end looks like, and how its own clients are told that a stream was ended early (<see cref="WriteError"/>).
/// One file per API beside this one; <see cref="ApiAdapters"/> picks by path. Adding an API: docs/adding-an-api.md.
/// </summary>
internal abstract class ApiAdapter
{
    private readonly ConcurrentDictionary<EndNotice, byte[]> _bodies = new();
    private readonly ConcurrentDictionary<EndNotice, byte[]> _sseEvents = new();
    private readonly ConcurrentDictionary<EndNotice, byte[]> _ndjsonLines = new();

    protected ApiAdapter(Api api, string label, string operation)
    {
        Api = api;
        Label = label;
        Operation = operation;
    }

    public Api Api { get; }

    /// <summary>The <c>api</c> metric label.</summary>
    public string Label { get; }

    /// <summary>The GenAI semantic conventions' <c>gen_ai.operation.name</c>.</summary>
    public string Operation { get; }

    /// <summary>True for a <c>POST</c> to this path (without its query) in this API.</summary>
    public abstract bool Matches(string path);

    /// <summary>The reader of this API's events and whole responses.</summary>
    public abstract ChunkReader Reader { get; }

    /// <summary>False where the API has no end mark the gateway can rely on: an end without one is not
    /// taken for a cut.</summary>
    public virtual bool KnowsEnd => true;

    /// <summary>What the path says (Gemini names the model and streaming in it).</summary>
    public virtual RequestFacts FromPath(string path, IQueryCollection query) => RequestFacts.None;

    /// <summary>Where this API's request body keeps its model, streaming flag and cap on generated tokens.</summary>
    public abstract RequestFields RequestFields { get; }

    /// <summary>Where this API's whole JSON answer keeps its model, counts and end mark.</summary>
    public abstract WholeBodyFields WholeBody { get; }

    /// <summary>A scanner of this API's request body, for <see cref="FromBody"/>.</summary>
    public BodyScanner ScanBody() => new(RequestFields);

    /// <summary>What the body says, from the fields <see cref="BodyScanner"/> found; by default all three.</summary>
    public virtual RequestFacts FromBody(BodyScanner body) => new(body.Model, body.Stream, body.Cap);

    /// <summary>
    /// <c>SessionStreams.IncludeUsage</c>, the request half: replaces the body with one that asks the upstream
    /// for its exact usage, where this API has such an option and the client did not use it; null where it
    /// has none (the others report usage on their own). The response half is <see cref="IsUsageOnlyEvent"/>.
    /// </summary>
    public virtual IUsageRequest? AskForUsage(HttpRequest request) => null;

    /// <summary>True for an event that only the gateway's <see cref="AskForUsage"/> made the upstream send: it is
    /// counted, then taken out of what a client that did not ask for it receives.</summary>
    public virtual bool IsUsageOnlyEvent(ReadOnlySpan<byte> json) => false;

    /// <summary>The counter for a response of this API, by its Content-Type.</summary>
    public TokenCounter CreateCounter(string? contentType, ContentText? text) => Framings.FromContentType(contentType) switch
    {
        Framing.Sse => new SseTokenCounter(Reader, text),
        Framing.Ndjson => new NdjsonTokenCounter(Reader, text),
        Framing.Json => new JsonBodyTokenCounter(Reader, WholeBody, text),
        _ => new TextTokenCounter(text),
    };

    /// <summary>The error body for a response that has not started, in this API's shape.</summary>
    public byte[] ErrorBody(EndNotice notice) => notice.Shared ? _bodies.GetOrAdd(notice, static (n, a) => a.Json(n), this) : Json(notice);

    /// <summary>The terminal event for a stream that has started, in this API's shape and the response's
    /// framing; null where the framing has no place for one (then the stream is aborted).</summary>
    public byte[]? StreamError(EndNotice notice, Framing framing) => framing switch
    {
        Framing.Sse => notice.Shared ? _sseEvents.GetOrAdd(notice, static (n, a) => a.SseEvent(n), this) : SseEvent(notice),
        Framing.Ndjson => notice.Shared ? _ndjsonLines.GetOrAdd(notice, static (n, a) => a.NdjsonLine(n), this) : NdjsonLine(notice),
        _ => null,
    };

    /// <summary>Answers a request that has not started with an error in this API's shape, keeping headers
    /// already set (such as <c>Retry-After</c>).</summary>
    public async Task WriteErrorResponseAsync(HttpContext context, EndNotice notice, CancellationToken cancellationToken)
    {
        var body = ErrorBody(notice);
        context.Response.StatusCode = notice.StatusCode;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = body.Length;
        await context.Response.Body.WriteAsync(body, cancellationToken);
    }

    /// <summary>Writes the error object of this API (the whole JSON document).</summary>
    protected abstract void WriteError(Utf8JsonWriter json, EndNotice notice);

    /// <summary>One SSE event carrying the error; by default <c>data: {error}</c> and a blank line.</summary>
    protected virtual byte[] SseEvent(EndNotice notice) => Frame("data: "u8, notice, "\n\n"u8);

    /// <summary>One NDJSON line carrying the error; by default Ollama's <c>{"error": "..."}</c>.</summary>
    protected virtual byte[] NdjsonLine(EndNotice notice)
    {
        var buffer = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("error", notice.Message);
            json.WriteEndObject();
        }

        buffer.Write("\n"u8);
        return buffer.WrittenSpan.ToArray();
    }

    protected byte[] Json(EndNotice notice) => Frame(default, notice, default);

    protected byte[] Frame(ReadOnlySpan<byte> prefix, EndNotice notice, ReadOnlySpan<byte> suffix, Action<Utf8JsonWriter, EndNotice>? write = null)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write(prefix);
        using (var json = new Utf8JsonWriter(buffer))
        {
            if (write is null)
            {
                WriteError(json, notice);
            }
            else
            {
                write(json, notice);
            }
        }

        buffer.Write(suffix);
        return buffer.WrittenSpan.ToArray();
    }

    protected static bool EndsWith(string path, string suffix) => path.EndsWith(suffix, StringComparison.Ordinal);
}

/// <summary>A request body an adapter rewrote to ask for usage (<see cref="ApiAdapter.AskForUsage"/>).</summary>
internal interface IUsageRequest
{
    /// <summary>True once the body asked: the upstream will send the usage-only event. Known only once the
    /// body's object has closed, before the upstream answers.</summary>
    bool AskedUsage { get; }
}

/// <summary>What a request says about its completion: the model, whether it streams, and its cap on
/// generated tokens. Any of them may be unknown.</summary>
internal sealed record RequestFacts(string? Model, bool? Stream, long? MaxTokens)
{
    public static readonly RequestFacts None = new(null, null, null);

    /// <summary>This request's facts, with <paramref name="other"/>'s where this has none.</summary>
    public RequestFacts Or(RequestFacts other) =>
        ReferenceEquals(other, None) ? this : new(Model ?? other.Model, Stream ?? other.Stream, MaxTokens ?? other.MaxTokens);
}
