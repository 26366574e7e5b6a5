using System.ComponentModel.DataAnnotations;

namespace Gateway.Affinity;

/// <summary>Session affinity (routes with <c>SessionStreams.Affinity</c>). Bound from <c>Gateway:Affinity</c>.</summary>
internal sealed class AffinityOptions
{
    public const string SectionName = "Gateway:Affinity";

    /// <summary>How long a session that moved (its destination failed) stays on its new destination after
    /// its last request, here and in Redis. After that it goes back to its first choice, if healthy.</summary>
    [Range(typeof(TimeSpan), "00:01:00", "7.00:00:00", ErrorMessage = "Gateway:Affinity:MoveTtl must be between 00:01:00 and 7.00:00:00.")]
    public TimeSpan MoveTtl { get; set; } = TimeSpan.FromHours(1);

    /// <summary>Moved sessions this replica remembers (Redis remembers them all); beyond it the oldest
    /// are forgotten, and such a session, with Redis down, goes back to its first choice.</summary>
    [Range(1, 10_000_000, ErrorMessage = "Gateway:Affinity:MaxRememberedMoves must be between 1 and 10000000.")]
    public int MaxRememberedMoves { get; set; } = 100_000;
}
