namespace Gateway.Telemetry;

/// <summary>
/// How a stream ended, in one vocabulary: a lease's reason (<see cref="None"/> while it runs; a cancellation
/// sets one of <see cref="Superseded"/>, <see cref="Stopped"/>, <see cref="Shutdown"/>), the proxy step's
/// outcome, the refusals. Bounded values, used as log fields and metric labels.
/// </summary>
internal enum StreamOutcome
{
    None = 0,
    /// <summary>A newer request claimed the same session key.</summary>
    Superseded = 1,
    /// <summary>The client went away before the response ended.</summary>
    ClientDisconnected = 2,
    /// <summary>An explicit stop request ended the stream.</summary>
    Stopped = 3,
    /// <summary>The gateway is shutting down and the drain deadline passed.</summary>
    Shutdown = 4,
    Completed = 5,
    UpstreamError = 6,
    /// <summary>Refused by a tenant limit before it went upstream.</summary>
    RateLimited = 7,
    /// <summary>Refused because its session had an active stream (OnNewer: reject).</summary>
    SessionBusy = 8,
    /// <summary>The model server was silent longer than its cluster's activity timeout, or the route's request
    /// timeout passed: the upstream request was aborted and the client told so.</summary>
    Timeout = 9,
    /// <summary>Refused before it went upstream as malformed (an invalid session key).</summary>
    Rejected = 10,
}

/// <summary>The one place an outcome becomes a label: the <c>outcome</c> label, and for a cancellation also the
/// <c>reason</c> label.</summary>
internal static class StreamOutcomes
{
    public static string ToLabel(this StreamOutcome outcome) => outcome switch
    {
        StreamOutcome.None => "none",
        StreamOutcome.Completed => "completed",
        StreamOutcome.Superseded => "superseded",
        StreamOutcome.ClientDisconnected => "client_disconnected",
        StreamOutcome.Stopped => "stopped",
        StreamOutcome.Shutdown => "shutdown",
        StreamOutcome.RateLimited => "rate_limited",
        StreamOutcome.SessionBusy => "session_busy",
        StreamOutcome.Timeout => "timeout",
        StreamOutcome.Rejected => "rejected",
        _ => "upstream_error",
    };

    /// <summary>A stream cut short by the gateway or its client: its tokens not generated count as saved.</summary>
    public static bool IsCancellation(this StreamOutcome outcome) =>
        outcome is StreamOutcome.Superseded or StreamOutcome.ClientDisconnected or StreamOutcome.Stopped or StreamOutcome.Shutdown;
}
