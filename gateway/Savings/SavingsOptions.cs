using System.ComponentModel.DataAnnotations;

namespace Gateway.Savings;

/// <summary>How tokens saved by a cancellation are estimated. Bound from <c>Gateway:Savings</c>.</summary>
internal sealed class SavingsOptions
{
    public const string SectionName = "Gateway:Savings";

    /// <summary>Expected completion length of a model with too few completed streams to learn from.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Gateway:Savings:PriorMeanTokens must be between 1 and 1000000.")]
    public int PriorMeanTokens { get; set; } = 256;

    /// <summary>Completed streams of a model needed before its learned lengths replace the prior.</summary>
    [Range(1, 100_000, ErrorMessage = "Gateway:Savings:MinSamples must be between 1 and 100000.")]
    public int MinSamples { get; set; } = 20;

    /// <summary>How many recent completed lengths are kept per model (memory: 4 bytes each).</summary>
    [Range(16, 100_000, ErrorMessage = "Gateway:Savings:Window must be between 16 and 100000.")]
    public int Window { get; set; } = 1024;
}
