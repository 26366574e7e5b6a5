using System.ComponentModel.DataAnnotations;

namespace Gateway.Resume;

/// <summary>What resumable streams may keep (<c>SessionStreams.Resume</c> on a route switches them on). Bound from
/// <c>Gateway:Resume</c>. Past a bound a detached stream is aborted at once and counted as <c>overflow</c>.</summary>
internal sealed class ResumeOptions
{
    public const string SectionName = "Gateway:Resume";

    /// <summary>Bytes of events one stream keeps for a resume; the oldest are forgotten first while a client reads,
    /// and a detached stream whose undelivered events alone pass it is aborted.</summary>
    [Range(4_096, 64L * 1024 * 1024, ErrorMessage = "Gateway:Resume:MaxStreamBytes must be between 4096 and 67108864.")]
    public long MaxStreamBytes { get; set; } = 1024 * 1024;

    /// <summary>Detached streams (generating with nobody reading) one tenant may have at once.</summary>
    [Range(1, 100_000, ErrorMessage = "Gateway:Resume:MaxDetachedPerTenant must be between 1 and 100000.")]
    public int MaxDetachedPerTenant { get; set; } = 16;

    /// <summary>Bytes kept for all detached streams of this gateway together.</summary>
    [Range(65_536, 16L * 1024 * 1024 * 1024, ErrorMessage = "Gateway:Resume:MaxDetachedBytes must be between 65536 and 17179869184.")]
    public long MaxDetachedBytes { get; set; } = 256L * 1024 * 1024;
}
