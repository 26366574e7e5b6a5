using Gateway.Telemetry;

namespace Gateway.Streams;

/// <summary>Log messages of the session-stream step. Keys appear only as fingerprints; never a prompt, completion or credential.</summary>
internal static partial class SessionStreamLog
{
    // Debug, not Information: one line per stream is a console queue that fills at thousands of
    // streams (the bench's mass abort of 9,500 clients waited on it); outcomes are in the metrics.
    [LoggerMessage(EventId = EventIds.StreamEnded, Level = LogLevel.Debug, Message = "Stream on route {RouteId} for session {SessionKey} ended: {Outcome}")]
    public static partial void StreamEnded(ILogger logger, string routeId, string sessionKey, string outcome);

    [LoggerMessage(EventId = EventIds.InvalidSessionKey, Level = LogLevel.Information, Message = "Rejected a request on route {RouteId}: {Reason}")]
    public static partial void InvalidSessionKey(ILogger logger, string routeId, string reason);

    [LoggerMessage(EventId = EventIds.UpstreamFailed, Level = LogLevel.Warning, Message = "Upstream failed on route {RouteId} ({ForwarderError}) after {ResponseBytes} response bytes")]
    public static partial void UpstreamFailed(ILogger logger, string routeId, string forwarderError, long responseBytes);

    [LoggerMessage(EventId = EventIds.UpstreamTimedOut, Level = LogLevel.Warning, Message = "Upstream timed out on route {RouteId} ({ForwarderError}) after {ResponseBytes} response bytes; the request was aborted")]
    public static partial void UpstreamTimedOut(ILogger logger, string routeId, string forwarderError, long responseBytes);

    [LoggerMessage(EventId = EventIds.CouldNotTellClient, Level = LogLevel.Debug, Message = "Could not tell the client on route {RouteId} why its stream ended; aborting the connection")]
    public static partial void CouldNotTellClient(ILogger logger, string routeId, Exception exception);

    [LoggerMessage(EventId = EventIds.UpstreamEndedEarly, Level = LogLevel.Warning, Message = "Upstream on route {RouteId} ended its {Api} stream without the API's end mark after {ResponseBytes} response bytes; told the client it was cut")]
    public static partial void UpstreamEndedEarly(ILogger logger, string routeId, string api, long responseBytes);
}
