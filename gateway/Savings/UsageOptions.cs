namespace Gateway.Savings;

/// <summary>The per-request usage record. Bound from <c>Gateway:Usage</c>.</summary>
internal sealed class UsageOptions
{
    public const string SectionName = "Gateway:Usage";

    /// <summary>One <c>Gateway.Usage</c> log event per proxied request when it ends (default on).</summary>
    public bool Log { get; set; } = true;
}
