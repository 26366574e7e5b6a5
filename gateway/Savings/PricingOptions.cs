using System.ComponentModel.DataAnnotations;
using Gateway.Telemetry;
using Gateway.Utilities;

namespace Gateway.Savings;

/// <summary>What tokens cost, so cancellations can be counted in money as well as tokens. Bound from
/// <c>Gateway:Pricing</c>. A model with no price is counted in tokens only.</summary>
internal sealed class PricingOptions : IValidatableObject
{
    public const string SectionName = "Gateway:Pricing";

    /// <summary>Patterns at most this long: a model label is at most 64 characters, so a longer pattern is a mistake.</summary>
    public const int MaxPatternLength = 128;

    public const int MaxModels = 1000;

    /// <summary>A price per million tokens at most this (a guard against a misplaced decimal point).</summary>
    public const decimal MaxPricePerMillion = 1_000_000m;

    /// <summary>ISO 4217 code of every price, and the <c>currency</c> label and unit of the cost metrics.</summary>
    public string Currency { get; set; } = CostCurrency.Default;

    /// <summary>Model name or pattern to its prices. <c>*</c> matches any run of characters (<c>gpt-4o*</c>,
    /// <c>*</c>); an exact name wins over patterns, then the pattern with the most literal characters.
    /// Names are compared ignoring case, as configuration keys are.</summary>
    public Dictionary<string, ModelPrice> Models { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!IsCurrencyCode(Currency))
        {
            yield return new ValidationResult(
                $"{SectionName}:Currency must be an ISO 4217 code of three uppercase letters (such as USD or EUR), not '{Shown(Currency)}'.");
        }

        if (Models.Count > MaxModels)
        {
            yield return new ValidationResult($"{SectionName}:Models has {Models.Count} entries; at most {MaxModels} are allowed.");
        }

        foreach (var (key, price) in Models)
        {
            var where = $"{SectionName}:Models:{Shown(key)}";
            if (PatternError(price.PatternFor(key)) is { } patternError)
            {
                yield return new ValidationResult($"{where}{(price.Model is null ? "" : ":Model")} {patternError}");
            }

            if (string.IsNullOrWhiteSpace(price.InputPerMillion) && string.IsNullOrWhiteSpace(price.OutputPerMillion))
            {
                yield return new ValidationResult($"{where} must set InputPerMillion or OutputPerMillion (or both).");
            }

            foreach (var (name, value) in new[] { ("InputPerMillion", price.InputPerMillion), ("OutputPerMillion", price.OutputPerMillion) })
            {
                if (!string.IsNullOrWhiteSpace(value) && ModelPrice.Parse(value) is null)
                {
                    yield return new ValidationResult(
                        $"{where}:{name} must be a decimal number between 0 and {MaxPricePerMillion} (a dot before any decimals), not '{Shown(value)}'.");
                }
            }
        }
    }

    public static bool IsCurrencyCode(string? value) =>
        value is { Length: 3 } && value[0] is >= 'A' and <= 'Z' && value[1] is >= 'A' and <= 'Z' && value[2] is >= 'A' and <= 'Z';

    /// <summary>Why a pattern cannot be used, or null.</summary>
    private static string? PatternError(string pattern)
    {
        if (string.IsNullOrEmpty(pattern))
        {
            return "must name a model or pattern.";
        }

        if (pattern.Length > MaxPatternLength)
        {
            return $"is {pattern.Length} characters long; a model name or pattern has at most {MaxPatternLength}.";
        }

        if (!PrintableAscii.IsAll(pattern))
        {
            return "must be printable ASCII (model labels are).";
        }

        return null;
    }

    /// <summary>A configured value as an error message shows it: bounded, control characters escaped.</summary>
    private static string Shown(string? value)
    {
        if (value is null)
        {
            return "";
        }

        var shown = value.Length > 80 ? value[..80] + "..." : value;
        return string.Create(shown.Length, shown, static (span, s) =>
        {
            for (var i = 0; i < s.Length; i++)
            {
                span[i] = PrintableAscii.Is(s[i]) ? s[i] : '?';
            }
        });
    }
}

/// <summary>One model's (or pattern's) prices per million tokens, in <see cref="PricingOptions.Currency"/>.
/// A price not given is 0. Bound as text and parsed here: a value the configuration binder cannot convert
/// would otherwise drop the whole entry without a word.</summary>
internal sealed class ModelPrice
{
    public string? InputPerMillion { get; set; }

    public string? OutputPerMillion { get; set; }

    public decimal Input => Parse(InputPerMillion) ?? 0;

    public decimal Output => Parse(OutputPerMillion) ?? 0;

    /// <summary>A plain decimal (<c>0.15</c>, <c>10</c>) between 0 and <see cref="PricingOptions.MaxPricePerMillion"/>, or null.</summary>
    public static decimal? Parse(string? text) =>
        decimal.TryParse(text, System.Globalization.NumberStyles.AllowDecimalPoint | System.Globalization.NumberStyles.AllowLeadingWhite
                | System.Globalization.NumberStyles.AllowTrailingWhite, System.Globalization.CultureInfo.InvariantCulture, out var value)
            && value <= PricingOptions.MaxPricePerMillion
            ? value
            : null;

    /// <summary>The name or pattern, when the configuration key cannot hold it: a key cannot contain
    /// <c>:</c>, which Ollama's model names do (<c>llama3:8b</c>).</summary>
    public string? Model { get; set; }

    public string PatternFor(string key) => Model ?? key;
}
