using Gateway.Errors;
using Gateway.Sessions;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Streams;

/// <summary>What the client is told when its stream ends early: the status for a response that has
/// not started, and the error type, code and message for every protocol.</summary>
internal sealed class EndNotice
{
    private EndNotice(int statusCode, string type, string code, string message)
    {
        StatusCode = statusCode;
        Type = type;
        Code = code;
        Message = message;
        Json = OpenAiError.JsonBody(message, type, code);
        Sse = OpenAiError.SseEvent(message, type, code);
        Ndjson = OpenAiError.NdjsonLine(message);
    }

    public int StatusCode { get; }
    public string Type { get; }
    public string Code { get; }
    public string Message { get; }
    public byte[] Json { get; }
    public byte[] Sse { get; }
    public byte[] Ndjson { get; }

    public static readonly EndNotice Superseded = new(StatusCodes.Status409Conflict, "request_superseded", "superseded",
        "This stream was superseded by a newer request with the same session key.");

    public static readonly EndNotice Stopped = new(StatusCodes.Status409Conflict, "request_stopped", "stopped",
        "This stream was stopped by a cancel request for its session.");

    public static readonly EndNotice Shutdown = new(StatusCodes.Status503ServiceUnavailable, "gateway_shutdown", "shutdown",
        "The gateway is shutting down; send the request again.");

    public static readonly EndNotice UpstreamReset = new(StatusCodes.Status502BadGateway, "upstream_error", "upstream_reset",
        "The model server closed the stream before it finished.");

    public static readonly EndNotice UpstreamUnavailable = new(StatusCodes.Status502BadGateway, "upstream_error", "upstream_unavailable",
        "The model server could not be reached.");

    public static readonly EndNotice UpstreamBadResponse = new(StatusCodes.Status502BadGateway, "upstream_error", "upstream_bad_response",
        "The model server sent a response the gateway could not forward.");

    public static readonly EndNotice UpstreamTimeout = new(StatusCodes.Status504GatewayTimeout, "upstream_error", "upstream_timeout",
        "The model server did not answer in time.");

    public static readonly EndNotice NoUpstream = new(StatusCodes.Status503ServiceUnavailable, "upstream_error", "no_upstream",
        "No healthy model server is configured for this route.");

    public static EndNotice? For(CancelReason reason) => reason switch
    {
        CancelReason.Superseded => Superseded,
        CancelReason.Stopped => Stopped,
        CancelReason.Shutdown => Shutdown,
        _ => null,
    };

    public static EndNotice For(ForwarderError error) => error switch
    {
        ForwarderError.Request or ForwarderError.RequestCreation => UpstreamUnavailable,
        ForwarderError.RequestTimedOut => UpstreamTimeout,
        ForwarderError.NoAvailableDestinations => NoUpstream,
        ForwarderError.ResponseHeaders => UpstreamBadResponse,
        _ => UpstreamReset,
    };
}
