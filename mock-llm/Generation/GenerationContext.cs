namespace MockLlm.Generation;

/// <summary>Everything a protocol writer needs to shape its chunks for one request.</summary>
/// <param name="Id">The ledger id; protocols prefix it (e.g. <c>chatcmpl-</c>).</param>
/// <param name="Model">The model to echo: the request's, else the first configured one.</param>
/// <param name="StoppedByCap">The request's cap, not the natural length, set <see cref="TokensPlanned"/>.</param>
internal sealed record GenerationContext(
    string Id,
    string Model,
    DateTimeOffset StartedAt,
    GenerationRequest Request,
    TokenScript Script,
    int TokensPlanned,
    bool StoppedByCap,
    TimeProvider Time)
{
    public long CreatedUnixSeconds => StartedAt.ToUnixTimeSeconds();
}

/// <summary>Timings reported when a generation ends.</summary>
internal readonly record struct GenerationStats(int TokensSent, TimeSpan Total, TimeSpan PromptEval, TimeSpan Eval)
{
    /// <summary>The durations the schedule planned rather than measured, for a pinned clock.</summary>
    public static GenerationStats Nominal(int tokensSent, int timeToFirstTokenMs, double intervalMs)
    {
        var promptEval = TimeSpan.FromMilliseconds(timeToFirstTokenMs);
        var eval = TimeSpan.FromMilliseconds(Math.Max(0, tokensSent - 1) * intervalMs);
        return new GenerationStats(tokensSent, promptEval + eval, promptEval, eval);
    }
}

/// <summary>A clock that always reads one instant: what <c>X-Mock-Clock</c> stamps into a response.</summary>
internal sealed class PinnedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}
