using System.Globalization;

namespace MockLlm.Generation;

/// <summary>Per-request behaviour chosen by <c>X-Mock-*</c> headers, falling back to the options.</summary>
/// <param name="CompletionTokens">Natural length before any cap.</param>
/// <param name="FailAfter">Abort the connection after this many tokens; null = never.</param>
/// <param name="Pause">A silence of <c>Milliseconds</c> after <c>AfterTokens</c> tokens (a model stalled mid-answer);
/// every later token, and the end, come that much later; null = none.</param>
/// <param name="Clock">Pins every id, timestamp and duration the response carries, so two responses
/// to the same request compare byte for byte; null = the real clock.</param>
internal readonly record struct GenerationOverrides(
    int CompletionTokens,
    double TokensPerSecond,
    int TimeToFirstTokenMs,
    bool EarlyHeaders,
    int? FailAfter,
    DateTimeOffset? Clock,
    (int AfterTokens, int Milliseconds)? Pause = null)
{
    public const string CompletionTokensHeader = "X-Mock-Completion-Tokens";
    public const string TokensPerSecondHeader = "X-Mock-Tokens-Per-Second";
    public const string TtftHeader = "X-Mock-Ttft-Ms";
    public const string EarlyHeadersHeader = "X-Mock-Early-Headers";
    public const string FailAfterHeader = "X-Mock-Fail-After";
    public const string ClockHeader = "X-Mock-Clock";
    public const string PauseHeader = "X-Mock-Pause";

    /// <summary>When token <paramref name="index"/> (or, at <c>index == planned</c>, the end) is due, in ms from the start.</summary>
    public double DueMs(int index, double intervalMs) =>
        TimeToFirstTokenMs + (index * intervalMs) + (Pause is { } pause && index >= pause.AfterTokens ? pause.Milliseconds : 0);

    /// <summary>Reads the headers; a malformed value is a client error, not something to ignore silently.</summary>
    public static bool TryRead(IHeaderDictionary headers, MockLlmOptions options, out GenerationOverrides overrides, out string? error)
    {
        overrides = default;
        error = null;

        var completionTokens = options.DefaultCompletionTokens;
        var tokensPerSecond = options.TokensPerSecond;
        var ttftMs = options.TimeToFirstTokenMs;
        var earlyHeaders = false;
        int? failAfter = null;

        if (headers.TryGetValue(CompletionTokensHeader, out var value))
        {
            if (!TryParseNonNegativeInt(value.ToString(), out completionTokens))
            {
                error = $"Header {CompletionTokensHeader} must be a non-negative integer.";
                return false;
            }
        }

        if (headers.TryGetValue(TokensPerSecondHeader, out value))
        {
            if (!double.TryParse(value.ToString(), NumberStyles.Float, CultureInfo.InvariantCulture, out tokensPerSecond)
                || !(tokensPerSecond > 0 && tokensPerSecond <= MockLlmOptions.MaxTokensPerSecond))
            {
                error = $"Header {TokensPerSecondHeader} must be a number > 0 and <= {MockLlmOptions.MaxTokensPerSecond}.";
                return false;
            }
        }

        if (headers.TryGetValue(TtftHeader, out value))
        {
            if (!TryParseNonNegativeInt(value.ToString(), out ttftMs))
            {
                error = $"Header {TtftHeader} must be a non-negative integer.";
                return false;
            }
        }

        if (headers.TryGetValue(EarlyHeadersHeader, out value))
        {
            if (!bool.TryParse(value.ToString(), out earlyHeaders))
            {
                error = $"Header {EarlyHeadersHeader} must be true or false.";
                return false;
            }
        }

        if (headers.TryGetValue(FailAfterHeader, out value))
        {
            if (!TryParseNonNegativeInt(value.ToString(), out var n))
            {
                error = $"Header {FailAfterHeader} must be a non-negative integer.";
                return false;
            }

            failAfter = n;
        }

        DateTimeOffset? clock = null;
        if (headers.TryGetValue(ClockHeader, out value))
        {
            if (!long.TryParse(value.ToString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out var seconds)
                || seconds < 0 || seconds > 253_402_300_799)
            {
                error = $"Header {ClockHeader} must be unix seconds between 0 and 253402300799.";
                return false;
            }

            clock = DateTimeOffset.FromUnixTimeSeconds(seconds);
        }

        (int, int)? pause = null;
        if (headers.TryGetValue(PauseHeader, out value))
        {
            var parts = value.ToString().Split(':');
            if (parts.Length != 2 || !TryParseNonNegativeInt(parts[0], out var afterTokens) || !TryParseNonNegativeInt(parts[1], out var pauseMs))
            {
                error = $"Header {PauseHeader} must be <tokens>:<milliseconds>, both non-negative integers.";
                return false;
            }

            pause = (afterTokens, pauseMs);
        }

        overrides = new GenerationOverrides(completionTokens, tokensPerSecond, ttftMs, earlyHeaders, failAfter, clock, pause);
        return true;
    }

    private static bool TryParseNonNegativeInt(string text, out int result) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out result) && result >= 0;
}
