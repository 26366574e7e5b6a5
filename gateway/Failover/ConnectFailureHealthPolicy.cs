using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Failover;

/// <summary>
/// A passive health policy for model servers (YARP's <c>HealthCheck.Passive.Policy</c> <c>ConnectFailure</c>, the
/// default this gateway gives every cluster): a destination that could not be reached (refused, unreachable, a
/// connect timeout, DNS, TLS) is unhealthy at once, for the cluster's <c>ReactivationPeriod</c>, after which YARP
/// tries it again; any response, even an error status or a slow one, makes it healthy. A failure rate over a window
/// (YARP's <c>TransportFailureRate</c>) would send a dead pod ten requests first; and a model that is slow to answer
/// is not down.
/// </summary>
internal sealed class ConnectFailureHealthPolicy(IDestinationHealthUpdater health) : IPassiveHealthCheckPolicy
{
    public const string PolicyName = "ConnectFailure";

    public static readonly TimeSpan DefaultReactivationPeriod = TimeSpan.FromSeconds(10);

    public string Name => PolicyName;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        var failure = AttemptFailures.Of(context.Features.Get<Yarp.ReverseProxy.Forwarder.IForwarderErrorFeature>());
        var period = cluster.Model.Config.HealthCheck?.Passive?.ReactivationPeriod ?? DefaultReactivationPeriod;
        if (failure.NeverReached())
        {
            health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, period);
        }
        else if (context.Response.StatusCode is > 0 and < 502 && destination.Health.Passive != DestinationHealth.Healthy)
        {
            // A response came from it (YARP's own 502/504 mean none did).
            health.SetPassive(cluster, destination, DestinationHealth.Healthy, period);
        }
    }
}
