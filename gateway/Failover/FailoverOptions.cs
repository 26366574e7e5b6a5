using System.ComponentModel.DataAnnotations;

namespace Gateway.Failover;

/// <summary>Trying another destination when an attempt failed before the model server could answer. Bound from
/// <c>Gateway:Failover</c>; the attempts and the reset rule are per cluster (<see cref="ClusterFailover"/>).</summary>
internal sealed class FailoverOptions
{
    public const string SectionName = "Gateway:Failover";

    /// <summary>The longest request body kept to resend on another destination; a longer one is sent once (and a
    /// failure of it is not retried, which is logged). 0 keeps none: only attempts that sent no byte of the body
    /// (a refused connection) are retried.</summary>
    [Range(0, 64 * 1024 * 1024, ErrorMessage = "Gateway:Failover:MaxBodyBytes must be between 0 and 67108864.")]
    public int MaxBodyBytes { get; set; } = 4 * 1024 * 1024;
}
