using System.Globalization;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Failover;

/// <summary>
/// A cluster's failover settings, from its YARP <c>Metadata</c>: <c>Failover.MaxAttempts</c> (attempts a request
/// may make on different destinations, default 3: a cluster of three with two down still answers; 1 turns
/// failover off) and <c>Failover.ResendAfterReset</c> (whether a request whose connection was reset after it was
/// sent, before any response byte, is sent again; default true).
/// </summary>
internal sealed record ClusterFailover(int MaxAttempts, bool ResendAfterReset)
{
    public const string MaxAttemptsKey = "Failover.MaxAttempts";
    public const string ResendAfterResetKey = "Failover.ResendAfterReset";
    public const int DefaultMaxAttempts = 3;
    public const int MostAttempts = 10;

    public static readonly ClusterFailover Default = new(DefaultMaxAttempts, ResendAfterReset: true);

    /// <summary>The cluster's settings, or an error naming the key.</summary>
    public static ClusterFailover Parse(ClusterConfig cluster, out string? error)
    {
        error = null;
        var attempts = DefaultMaxAttempts;
        var resend = true;
        if (cluster.Metadata?.TryGetValue(MaxAttemptsKey, out var text) == true
            && !(int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out attempts) && attempts is >= 1 and <= MostAttempts))
        {
            error = $"ReverseProxy:Clusters:{cluster.ClusterId}:Metadata:{MaxAttemptsKey} is '{text}'; it must be a whole number from 1 to {MostAttempts}.";
            return Default;
        }

        if (cluster.Metadata?.TryGetValue(ResendAfterResetKey, out text) == true && !bool.TryParse(text, out resend))
        {
            error = $"ReverseProxy:Clusters:{cluster.ClusterId}:Metadata:{ResendAfterResetKey} is '{text}'; it must be true or false.";
            return Default;
        }

        return attempts == DefaultMaxAttempts && resend ? Default : new(attempts, resend);
    }
}
