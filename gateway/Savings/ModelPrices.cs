using System.Collections.Concurrent;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Savings;

/// <summary>A model's prices per million tokens, and the configured name or pattern they came from.</summary>
internal readonly record struct Price(decimal InputPerMillion, decimal OutputPerMillion, string Pattern)
{
    /// <summary>What a cancellation saved (tokens saved x output price) and what the cancelled stream still
    /// cost (tokens spent x output price + prompt tokens, where reported, x input price).</summary>
    public (double Saved, double Spent) Cost(long tokensSaved, long tokensSpent, long? promptTokens) =>
        ((double)(tokensSaved * OutputPerMillion / 1_000_000m),
         (double)(((tokensSpent * OutputPerMillion) + ((promptTokens ?? 0) * InputPerMillion)) / 1_000_000m));
}

/// <summary>
/// Prices models by their metric label (<see cref="ModelLabels"/>): an exact name first, then the
/// matching pattern with the most literal characters. The labels <c>other</c> and <c>unknown</c> stand
/// for many models, so only a pattern of nothing but <c>*</c> prices them. Each label is looked up once
/// (labels are bounded); a label without a price is logged the first time a cancellation of it is seen.
/// </summary>
internal sealed class ModelPrices
{
    /// <summary>Labels remembered at most; past it a label is looked up each time and not logged.</summary>
    public const int MaxRemembered = 4096;

    private readonly (string Pattern, Price Price)[] _exact;
    private readonly (string Pattern, Price Price)[] _patterns; // most literal characters first
    private readonly ConcurrentDictionary<string, Price?> _byLabel = new(StringComparer.Ordinal);
    private readonly ILogger<ModelPrices> _logger;
    private int _remembered;

    public ModelPrices(IOptions<PricingOptions> pricing, IOptions<TelemetryOptions> telemetry, ILogger<ModelPrices> logger)
    {
        _logger = logger;
        Currency = pricing.Value.Currency;
        var all = pricing.Value.Models
            .Select(m => (Pattern: m.Value.PatternFor(m.Key), Price: new Price(m.Value.Input, m.Value.Output, m.Value.PatternFor(m.Key))))
            .ToArray();
        _exact = [.. all.Where(p => !p.Pattern.Contains('*'))];
        _patterns = [.. all.Where(p => p.Pattern.Contains('*'))
            .OrderByDescending(p => p.Pattern.Length - p.Pattern.Count(c => c == '*'))
            .ThenBy(p => p.Pattern, StringComparer.Ordinal)];

        if (all.Length > 0)
        {
            foreach (var model in telemetry.Value.Models)
            {
                if (Remember(model) is null)
                {
                    PricingLog.NoPriceAtStart(_logger, model);
                }
            }
        }
    }

    /// <summary>The currency of every price: the <c>currency</c> label of the cost metrics.</summary>
    public string Currency { get; }

    /// <summary>True when any price is configured.</summary>
    public bool Enabled => _exact.Length + _patterns.Length > 0;

    /// <summary>The price of a model label, or null. Logs a label without a price once.</summary>
    public Price? For(string label)
    {
        if (!Enabled)
        {
            return null;
        }

        if (_byLabel.TryGetValue(label, out var known))
        {
            return known;
        }

        if (Volatile.Read(ref _remembered) >= MaxRemembered)
        {
            return Match(label);
        }

        var price = Remember(label, out var added);
        if (added && price is null)
        {
            PricingLog.NoPriceSeen(_logger, label);
        }

        return price;
    }

    private Price? Remember(string label) => Remember(label, out _);

    private Price? Remember(string label, out bool added)
    {
        var price = Match(label);
        added = _byLabel.TryAdd(label, price);
        if (added)
        {
            Interlocked.Increment(ref _remembered);
        }

        return _byLabel.TryGetValue(label, out var stored) ? stored : price;
    }

    /// <summary>The most specific price for <paramref name="label"/>: exact, then the longest matching pattern.</summary>
    public Price? Match(string label)
    {
        var many = label is ModelLabels.Other or ModelLabels.Unknown;
        if (!many)
        {
            foreach (var (pattern, price) in _exact)
            {
                if (string.Equals(pattern, label, StringComparison.OrdinalIgnoreCase))
                {
                    return price;
                }
            }
        }

        foreach (var (pattern, price) in _patterns)
        {
            if (many ? pattern.AsSpan().Trim('*').IsEmpty : Glob(pattern, label))
            {
                return price;
            }
        }

        return null;
    }

    /// <summary><c>*</c> matches any run of characters, case ignored. Linear backtracking to the last star:
    /// at most pattern x text steps, whatever the pattern (no exponential blow-up on <c>*a*a*a*b</c>).</summary>
    public static bool Glob(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, resume = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                resume = t;
            }
            else if (p < pattern.Length && char.ToUpperInvariant(pattern[p]) == char.ToUpperInvariant(text[t]))
            {
                p++;
                t++;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++resume;
            }
            else
            {
                return false;
            }
        }

        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }

        return p == pattern.Length;
    }
}

internal static partial class PricingLog
{
    [LoggerMessage(EventId = EventIds.NoPriceAtStart, Level = LogLevel.Warning,
        Message = "Model {Model} (Gateway:Telemetry:Models) has no price in Gateway:Pricing:Models: its cancellations are counted in tokens only.")]
    public static partial void NoPriceAtStart(ILogger logger, string model);

    [LoggerMessage(EventId = EventIds.NoPriceSeen, Level = LogLevel.Warning,
        Message = "Model label {Model} has no price in Gateway:Pricing:Models: its cancellations are counted in tokens only (logged once per label).")]
    public static partial void NoPriceSeen(ILogger logger, string model);
}
