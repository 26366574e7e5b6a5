using System.ComponentModel.DataAnnotations;

namespace Gateway.Telemetry;

/// <summary>Metric label bounds. Bound from <c>Gateway:Telemetry</c>.</summary>
internal sealed class TelemetryOptions
{
    public const string SectionName = "Gateway:Telemetry";

    /// <summary>Model names that get their own <c>model</c> label; every other model is <c>other</c>.
    /// Empty: the first <see cref="MaxModelLabels"/> distinct names seen get their own label.</summary>
    public string[] Models { get; set; } = [];

    /// <summary>With no <see cref="Models"/> list, how many distinct names are admitted before the rest fold into <c>other</c>.
    /// Any client can name any model, so this bounds what one caller can add to every series.</summary>
    [Range(0, 1000, ErrorMessage = "Gateway:Telemetry:MaxModelLabels must be between 0 and 1000.")]
    public int MaxModelLabels { get; set; } = 20;
}
