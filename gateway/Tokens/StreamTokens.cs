namespace Gateway.Tokens;

/// <summary>A response body that counts the tokens passing through it (the session step's tap).</summary>
internal interface ICountedStream
{
    /// <summary>Null until the response's first bytes chose a counter, or when it is not counted.</summary>
    TokenCounter? Counter { get; }
}

/// <summary>
/// The tokens of the stream a request is proxying, readable off the request's thread while it runs: a
/// feature that whoever wants them (token budgets) sets before the proxy, and the session step fills with
/// its tap. Reading it costs the stream nothing: the counter is the one the tap keeps anyway.
/// </summary>
internal sealed class StreamTokens
{
    private ICountedStream? _tap;

    public void Attach(ICountedStream tap) => Volatile.Write(ref _tap, tap);

    /// <summary>Completion tokens counted so far plus the prompt tokens the upstream reported (0 before any
    /// report). While the stream runs the figure may lag a chunk behind; once the request has returned it
    /// is final (tokenizer recounts aside).</summary>
    public long Spent => Volatile.Read(ref _tap)?.Counter is { } counter ? counter.Tokens + (counter.ReportedPromptTokens ?? 0) : 0;
}
