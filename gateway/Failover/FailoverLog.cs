using Gateway.Telemetry;

namespace Gateway.Failover;

internal static partial class FailoverLog
{
    [LoggerMessage(EventId = EventIds.AttemptRetried, Level = LogLevel.Warning,
        Message = "Attempt {Attempt} of a request on cluster {ClusterId} failed at destination {DestinationId} ({Reason}) before any response; sending it to another destination")]
    public static partial void Retrying(ILogger logger, int attempt, string clusterId, string destinationId, string reason);

    [LoggerMessage(EventId = EventIds.AttemptNotRetried, Level = LogLevel.Warning,
        Message = "A request on cluster {ClusterId} failed at destination {DestinationId} ({Reason}) and is not sent again: {Why}")]
    public static partial void NotRetried(ILogger logger, string clusterId, string destinationId, string reason, string why);
}
