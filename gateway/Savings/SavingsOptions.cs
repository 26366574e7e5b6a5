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

    /// <summary>On a route with <c>SessionStreams.CancelPolicy: Drain</c>, how long a released stream
    /// may still be read for its usage before it is aborted after all.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00", ErrorMessage = "Gateway:Savings:MaxDrainTime must be between 00:00:01 and 1.00:00:00.")]
    public TimeSpan MaxDrainTime { get; set; } = TimeSpan.FromMinutes(5);
}
