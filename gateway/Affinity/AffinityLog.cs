using Gateway.Telemetry;

namespace Gateway.Affinity;

/// <summary>Log messages of session affinity: cluster and destination ids only, never a session key.</summary>
internal static partial class AffinityLog
{
    [LoggerMessage(EventId = EventIds.AffinityMoved, Level = LogLevel.Debug, Message = "A session on cluster {ClusterId} moved from destination {From} to {To} ({Reason})")]
    public static partial void Moved(ILogger logger, string clusterId, string from, string to, string reason);

    [LoggerMessage(EventId = EventIds.AffinityRedisFailed, Level = LogLevel.Debug, Message = "Redis did not answer an affinity lookup ({Error}); using this replica's own record")]
    public static partial void RedisFailed(ILogger logger, string error);
}
