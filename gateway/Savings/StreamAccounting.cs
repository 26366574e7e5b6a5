using Gateway.Protocols;
using Gateway.Telemetry;
using Gateway.Tokens;

namespace Gateway.Savings;

/// <summary>Everything known about a stream when it ends, before its tokens are final.</summary>
internal sealed record StreamEnd(
    string Route,
    string Model,
    string Operation,
    StreamOutcome Outcome,
    RequestFacts Request,
    TokenCounter? Counter,
    double? TimeToFirstChunkSeconds,
    double? CancelLatencySeconds,
    bool Drained,
    string? TenantSession = null)
{
    /// <summary>The API's metric label.</summary>
    public string Api { get; init; } = ApiAdapters.Other.Label;

    /// <summary>What its usage record says of the caller (null: no record, as for a drained stream's second end).</summary>
    public UsageSubject? Who { get; init; }

    /// <summary>For <see cref="StreamOutcome.UpstreamError"/>: <c>4xx</c> or <c>5xx</c> for an error status the
    /// upstream answered with, <c>cut</c> for a stream it broke off.</summary>
    public string? ErrorClass { get; init; }
}

/// <summary>
/// Turns a stream's end into its figures: tokens streamed, and for a cancellation the estimate of
/// tokens saved; records them, and teaches the estimator from streams that completed.
/// </summary>
internal sealed class StreamAccounting(GatewayMetrics metrics, SavingsEstimator estimator, TokenizerCounting tokenizer, SessionSavings sessions,
    ModelPrices prices, UsageRecords usage)
{
    /// <summary>Records <paramref name="end"/>. With tokenizer counting the figures are recorded
    /// once a background worker has counted the text; the request does not wait for it.</summary>
    public void Record(StreamEnd end)
    {
        if (end.Counter?.Text is not null && tokenizer.TryQueue(end, Finish))
        {
            return;
        }

        Finish(end, end.Counter?.Tokens ?? 0);
    }

    /// <summary>The figures for a stream whose completion-token count is final.</summary>
    public StreamRecord Finish(StreamEnd end, long tokens)
    {
        SavingsEstimate? saved = null;
        if (end.Outcome.IsCancellation())
        {
            saved = end.Drained
                ? new SavingsEstimate(0, Estimator.Drained)
                : estimator.Estimate(end.Model, tokens, end.Request.MaxTokens);
        }
        else if (end.Outcome == StreamOutcome.Completed && end.Counter is not null)
        {
            estimator.RecordCompleted(end.Model, tokens);
        }

        if (saved is { } estimate && end.TenantSession is not null)
        {
            sessions.Add(end.TenantSession, estimate.Tokens);
        }

        var record = new StreamRecord(
            end.Route,
            end.Model,
            end.Api,
            end.Operation,
            end.Outcome,
            end.ErrorClass,
            tokens,
            end.Counter?.ReportedPromptTokens,
            end.TimeToFirstChunkSeconds,
            saved?.Tokens,
            saved?.EstimatorLabel,
            end.CancelLatencySeconds);
        if (saved is { } cancelled && prices.For(end.Model) is { } price)
        {
            var (costSaved, costSpent) = price.Cost(cancelled.Tokens, tokens, end.Counter?.ReportedPromptTokens);
            record = record with { CostSaved = costSaved, CostSpent = costSpent, Currency = prices.Currency };
        }

        metrics.StreamEnded(record);
        usage.Ended(end, record);
        end.Counter?.Dispose();
        return record;
    }
}
