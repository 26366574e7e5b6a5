namespace Gateway.Sessions;

/// <summary>Why a stream's lease was cancelled. <see cref="None"/> while it is alive.</summary>
internal enum CancelReason
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
}

internal static class CancelReasonNames
{
    /// <summary>Bounded label values for logs and metrics.</summary>
    public static string ToLabel(this CancelReason reason) => reason switch
    {
        CancelReason.Superseded => "superseded",
        CancelReason.ClientDisconnected => "client_disconnected",
        CancelReason.Stopped => "stopped",
        CancelReason.Shutdown => "shutdown",
        _ => "none",
    };
}
