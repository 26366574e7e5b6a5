namespace MockLlm.Recording;

/// <summary>An immutable copy of one generation request's ground truth, as seen at snapshot time.</summary>
/// <param name="Id">Unique per request; also returned in the <c>X-Mock-Request-Id</c> response header.</param>
/// <param name="Path">The request path, e.g. <c>/v1/chat/completions</c>.</param>
/// <param name="SessionId">The <c>X-Session-Id</c> request header as received, or null.</param>
/// <param name="Model">The model named in the request body, or null.</param>
/// <param name="Stream">Whether the response streams token by token.</param>
/// <param name="TokensPlanned">min(request cap, natural length).</param>
/// <param name="TokensSent">Tokens written and flushed so far (for non-streaming requests: generated so far).</param>
/// <param name="Cancelled">The client went away (or the server stopped) before the end.</param>
/// <param name="Completed">The response finished normally.</param>
/// <param name="Failed">The connection was aborted by <c>X-Mock-Fail-After</c>.</param>
/// <param name="StartedAt">When the entry was created.</param>
/// <param name="EndedAt">When the request ended; null while it runs.</param>
public sealed record LedgerEntry(
    string Id,
    string Path,
    string? SessionId,
    string? Model,
    bool Stream,
    int TokensPlanned,
    int TokensSent,
    bool Cancelled,
    bool Completed,
    bool Failed,
    DateTimeOffset StartedAt,
    DateTimeOffset? EndedAt)
{
    /// <summary>The request asked for a final usage chunk (OpenAI's <c>stream_options.include_usage</c>).</summary>
    public bool IncludeUsage { get; init; }
}
