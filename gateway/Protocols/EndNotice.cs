namespace Gateway.Protocols;

/// <summary>Why the gateway ended (or refused) a response: the status for a response that has not
/// started, and the error type, code and message each API's adapter writes in its own shape.</summary>
internal sealed class EndNotice(int statusCode, string type, string code, string message, bool shared = false)
{
    public int StatusCode { get; } = statusCode;

    /// <summary>One of the fixed notices below, whose bytes each adapter makes once.</summary>
    public bool Shared { get; } = shared;

    public string Type { get; } = type;
    public string Code { get; } = code;
    public string Message { get; } = message;

    public static readonly EndNotice Superseded = new(StatusCodes.Status409Conflict, "request_superseded", "superseded",
        "This stream was superseded by a newer request with the same session key.", shared: true);

    public static readonly EndNotice SessionBusy = new(StatusCodes.Status409Conflict, "session_busy", "session_busy",
        "A stream with the same session key is still active; send the request again when it has ended, or stop it first.", shared: true);

    public static readonly EndNotice Stopped = new(StatusCodes.Status409Conflict, "request_stopped", "stopped",
        "This stream was stopped by a cancel request for its session.", shared: true);

    public static readonly EndNotice Shutdown = new(StatusCodes.Status503ServiceUnavailable, "gateway_shutdown", "shutdown",
        "The gateway is shutting down; send the request again.", shared: true);

    public static readonly EndNotice UpstreamReset = new(StatusCodes.Status502BadGateway, "upstream_error", "upstream_reset",
        "The model server closed the stream before it finished.", shared: true);

    public static readonly EndNotice UpstreamUnavailable = new(StatusCodes.Status502BadGateway, "upstream_error", "upstream_unavailable",
        "The model server could not be reached.", shared: true);

    public static readonly EndNotice UpstreamBadResponse = new(StatusCodes.Status502BadGateway, "upstream_error", "upstream_bad_response",
        "The model server sent a response the gateway could not forward.", shared: true);

    public static readonly EndNotice UpstreamTimeout = new(StatusCodes.Status504GatewayTimeout, "upstream_error", "upstream_timeout",
        "The model server did not answer in time.", shared: true);

    public static readonly EndNotice NoUpstream = new(StatusCodes.Status503ServiceUnavailable, "upstream_error", "no_upstream",
        "No healthy model server is configured for this route.", shared: true);
}
