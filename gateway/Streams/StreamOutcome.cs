namespace Gateway.Streams;

/// <summary>How a proxied stream ended. Bounded values, used as log fields and metric labels.</summary>
internal enum StreamOutcome
{
    Completed,
    Superseded,
    ClientDisconnected,
    Stopped,
    Shutdown,
    UpstreamError,
}

internal static class StreamOutcomeNames
{
    public static string ToLabel(this StreamOutcome outcome) => outcome switch
    {
        StreamOutcome.Completed => "completed",
        StreamOutcome.Superseded => "superseded",
        StreamOutcome.ClientDisconnected => "client_disconnected",
        StreamOutcome.Stopped => "stopped",
        StreamOutcome.Shutdown => "shutdown",
        _ => "upstream_error",
    };
}
