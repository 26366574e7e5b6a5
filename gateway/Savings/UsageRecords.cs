using Gateway.Telemetry;
using Gateway.Utilities;
using Microsoft.Extensions.Options;

namespace Gateway.Savings;

/// <summary>Who a request's usage belongs to and how long it took, as its usage record carries it: never the
/// credential, the session id or anything of the prompt.</summary>
/// <param name="Tenant">A short hash of the credential (the identity that scopes session keys), or <c>anonymous</c>.</param>
/// <param name="SessionKeyHash">The session key's log fingerprint, or null without a key.</param>
/// <param name="Model">The model the request named, bounded and escaped (<see cref="LogText"/>); not the metric label.</param>
internal readonly record struct UsageSubject(string Tenant, string? SessionKeyHash, string? Model, double DurationMs)
{
    public const string Anonymous = "anonymous";

    /// <summary>Hex characters of the credential hash a record keeps: 48 bits, enough to tell tenants apart in an
    /// audit, too few to stand in for the scoping hash.</summary>
    public const int TenantChars = 12;

    public static UsageSubject Of(string? credentialHash, string? sessionKeyHash, string? model, TimeSpan duration) =>
        new(credentialHash is null ? Anonymous : credentialHash[..Math.Min(TenantChars, credentialHash.Length)],
            sessionKeyHash, LogText.Bounded(model), Math.Round(duration.TotalMilliseconds, 1));
}

/// <summary>
/// The usage record: one structured log event (category <c>Gateway.Usage</c>, event 800) per proxied request when it
/// ends (on a route without session streams, without tokens or model), refusals included, with its tokens as counted (cancelled streams'
/// too), the estimate of tokens saved and, for a priced model, its cost. The field names are fixed, so log
/// pipelines can rely on them. <c>Gateway:Usage:Log</c> switches it off.
/// </summary>
internal sealed partial class UsageRecords(ILoggerFactory loggers, IOptions<UsageOptions> options, ModelPrices prices)
{
    public const string Category = "Gateway.Usage";

    private readonly ILogger _logger = loggers.CreateLogger(Category);
    private readonly bool _on = options.Value.Log;

    /// <summary>Whether a record would be written now (switched on, and the category's level lets it through).</summary>
    public bool On => _on && _logger.IsEnabled(LogLevel.Information);

    /// <summary>A stream's end, once its tokens are final (<see cref="StreamAccounting"/>).</summary>
    public void Ended(StreamEnd end, in StreamRecord record)
    {
        if (!_on || end.Who is not { } who || !_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        var costSpent = record.CostSpent;
        var costSaved = record.CostSaved;
        string? currency = record.Currency;
        if (costSpent is null && prices.For(end.Model) is { } price)
        {
            // Metrics price only cancellations; a record prices every request, so that it can be billed.
            costSpent = price.Cost(0, record.TokensStreamed, record.PromptTokens).Spent;
            currency = prices.Currency;
        }

        Write(_logger, end.Route, end.Api, who.Model, end.Outcome.ToLabel(), who.Tenant, who.SessionKeyHash,
            record.PromptTokens, record.TokensStreamed, record.TokensSaved, record.Estimator, costSpent, costSaved, currency,
            record.TimeToFirstChunkSeconds is { } first ? Math.Round(first * 1000, 1) : null, who.DurationMs);
    }

    /// <summary>A request whose tokens are not counted: answered by the gateway itself before it went upstream (a
    /// limit, a busy session, a bad key), or of an API the gateway does not read, without a session key.</summary>
    public void Ended(string route, string api, StreamOutcome outcome, UsageSubject who, double? firstByteMs = null)
    {
        if (!_on || !_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }

        Write(_logger, route, api, who.Model, outcome.ToLabel(), who.Tenant, who.SessionKeyHash,
            null, 0, null, null, null, null, null, firstByteMs, who.DurationMs);
    }

    [LoggerMessage(EventId = EventIds.UsageRecord, Level = LogLevel.Information,
        Message = "Usage route={route} api={api} model={model} outcome={outcome} tenant={tenant} sessionKeyHash={sessionKeyHash} "
            + "promptTokens={promptTokens} completionTokens={completionTokens} savedTokens={savedTokens} estimator={estimator} "
            + "costSpent={costSpent} costSaved={costSaved} currency={currency} firstByteMs={firstByteMs} durationMs={durationMs}")]
    private static partial void Write(ILogger logger, string route, string api, string? model, string outcome, string tenant,
        string? sessionKeyHash, long? promptTokens, long completionTokens, long? savedTokens, string? estimator,
        double? costSpent, double? costSaved, string? currency, double? firstByteMs, double durationMs);
}
