using System.ComponentModel.DataAnnotations;

namespace Gateway.Limits;

/// <summary>Per-tenant limits. Bound from <c>Gateway:RateLimits</c>; attached to a route with YARP's
/// <c>"RateLimiterPolicy": "per-tenant"</c>.</summary>
internal sealed class RateLimitOptions
{
    public const string SectionName = "Gateway:RateLimits";

    /// <summary>The policy name routes use.</summary>
    public const string PolicyName = "per-tenant";

    /// <summary>Token bucket: requests a tenant may burst.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Gateway:RateLimits:TokenLimit must be between 1 and 1000000.")]
    public int TokenLimit { get; set; } = 120;

    /// <summary>Token bucket: requests added back each <see cref="ReplenishmentPeriod"/>.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Gateway:RateLimits:TokensPerPeriod must be between 1 and 1000000.")]
    public int TokensPerPeriod { get; set; } = 20;

    [Range(typeof(TimeSpan), "00:00:00.010", "01:00:00", ErrorMessage = "Gateway:RateLimits:ReplenishmentPeriod must be between 00:00:00.010 and 01:00:00.")]
    public TimeSpan ReplenishmentPeriod { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Streams a tenant may have open at once. A request that supersedes the tenant's own
    /// stream does not need a free slot: it takes over the one of the stream it replaces.</summary>
    [Range(1, 1_000_000, ErrorMessage = "Gateway:RateLimits:MaxConcurrentStreams must be between 1 and 1000000.")]
    public int MaxConcurrentStreams { get; set; } = 64;

    /// <summary>Callers without a credential. <see cref="AnonymousLimits.Unlimited"/> (default): no
    /// per-tenant limit, since behind an ingress or a load balancer every anonymous caller arrives from
    /// the same address and would share one tenant's limits. <see cref="AnonymousLimits.PerAddress"/>:
    /// each client address is a tenant with the limits above; the address is the connection's, or the one
    /// a trusted proxy forwarded (<c>Gateway:ForwardedHeaders</c>).</summary>
    public AnonymousLimits Anonymous { get; set; } = AnonymousLimits.Unlimited;

    /// <summary>Each tenant's token budget: completion tokens streamed plus prompt tokens the upstream
    /// reported, refilled continuously at this many per minute up to this many (see <see cref="TokenBudgets"/>).
    /// Unset (default): no token budget. Tokens are known only once spent, so a stream that overshoots puts
    /// its tenant in debt: new requests wait until the debt is paid back; a running stream is never cut.</summary>
    [Range(1, 1_000_000_000, ErrorMessage = "Gateway:RateLimits:TokensPerMinute must be between 1 and 1000000000 (leave it unset for no token budget).")]
    public int? TokensPerMinute { get; set; }
}

internal enum AnonymousLimits
{
    Unlimited,
    PerAddress,
}
