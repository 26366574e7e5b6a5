namespace Gateway.Telemetry;

/// <summary>Every log event's id, in one place (as YARP's <c>EventIds</c>): a hundred a feature, so a
/// dashboard or alert can match an event by number. Never reuse a number for a different event.</summary>
internal static class EventIds
{
    public const int StreamEnded = 100;
    public const int InvalidSessionKey = 101;
    public const int UpstreamFailed = 102;
    public const int CouldNotTellClient = 103;
    public const int UpstreamEndedEarly = 104;
    public const int UpstreamTimedOut = 105;
    public const int SessionStopped = 110;
    public const int RedisUnavailable = 130;
    public const int RedisAvailable = 131;
    public const int RedisSupersededRemotely = 132;
    public const int RedisReconciled = 133;

    public const int TokenizerFailed = 300;

    public const int DrainDeadlinePassed = 400;
    public const int LeavingRotation = 401;
    public const int HostStopping = 402;

    public const int NoPriceAtStart = 500;
    public const int NoPriceSeen = 501;
    public const int BudgetRedisNotAnswering = 510;
    public const int BudgetRedisAnswering = 511;

    public const int AffinityMoved = 700;
    public const int AffinityRedisFailed = 701;

    public const int UsageRecord = 800;

    public const int AttemptRetried = 900;
    public const int AttemptNotRetried = 901;
}
