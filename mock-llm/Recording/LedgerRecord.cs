namespace MockLlm.Recording;

internal enum LedgerOutcome
{
    Running,
    Completed,
    Cancelled,
    Failed,
}

/// <summary>The live, mutable side of a <see cref="LedgerEntry"/>. The token count is bumped with
/// Interlocked on the hot path; the end state is written once, under the ledger's lock.</summary>
internal sealed class LedgerRecord(
    string id,
    string path,
    string? sessionId,
    string? model,
    bool stream,
    int tokensPlanned,
    DateTimeOffset startedAt)
{
    private int _tokensSent;
    private LedgerOutcome _outcome;
    private DateTimeOffset? _endedAt;

    public string Id => id;

    /// <summary>The request asked for a final usage chunk (<c>stream_options.include_usage</c>).</summary>
    public bool IncludeUsage { get; init; }

    public DateTimeOffset StartedAt => startedAt;

    public int TokensPlanned => tokensPlanned;

    public int TokensSent => Volatile.Read(ref _tokensSent);

    public void IncrementTokensSent() => Interlocked.Increment(ref _tokensSent);

    /// <summary>Caller holds the ledger lock.</summary>
    public bool TryEnd(LedgerOutcome outcome, DateTimeOffset at)
    {
        if (_endedAt is not null)
        {
            return false;
        }

        _outcome = outcome;
        _endedAt = at;
        return true;
    }

    /// <summary>Caller holds the ledger lock.</summary>
    public LedgerEntry ToEntry() => new(
        id,
        path,
        sessionId,
        model,
        stream,
        tokensPlanned,
        TokensSent,
        Cancelled: _outcome == LedgerOutcome.Cancelled,
        Completed: _outcome == LedgerOutcome.Completed,
        Failed: _outcome == LedgerOutcome.Failed,
        startedAt,
        _endedAt)
    {
        IncludeUsage = IncludeUsage,
    };
}
