namespace MockLlm.Generation;

/// <summary>Settings for the mock model server, bound from the <c>MockLlm</c> configuration section.</summary>
public sealed class MockLlmOptions
{
    public const string SectionName = "MockLlm";

    /// <summary>Upper bound accepted for <see cref="TokensPerSecond"/>; faster than this the timer
    /// resolution makes the schedule meaningless.</summary>
    internal const double MaxTokensPerSecond = 10_000;

    /// <summary>Completion length when the request has no <c>X-Mock-Completion-Tokens</c> header.
    /// A request's max-tokens cap can only shorten it.</summary>
    public int DefaultCompletionTokens { get; set; } = 64;

    /// <summary>Steady token rate after the first token; overridden per request by <c>X-Mock-Tokens-Per-Second</c>.</summary>
    public double TokensPerSecond { get; set; } = 20;

    /// <summary>Delay before the first token; overridden per request by <c>X-Mock-Ttft-Ms</c>.</summary>
    public int TimeToFirstTokenMs { get; set; } = 200;

    /// <summary>Ids listed by <c>GET /v1/models</c>; the first one is echoed when a request names no model.
    /// Setting it in configuration replaces the default list rather than appending to it.</summary>
    public string[] Models { get; set; } = ["mock-1"];

    internal MockLlmOptions Clone() => new()
    {
        DefaultCompletionTokens = DefaultCompletionTokens,
        TokensPerSecond = TokensPerSecond,
        TimeToFirstTokenMs = TimeToFirstTokenMs,
        Models = (string[])Models.Clone(),
    };
}
