using Yarp.ReverseProxy.Configuration;

namespace Gateway.Failover;

/// <summary>
/// Health that follows reality by default: a cluster without its own <c>HealthCheck.Passive</c> gets YARP's
/// passive health checks with <see cref="ConnectFailureHealthPolicy"/> and a 10 s reactivation period, so a dead
/// destination is skipped and comes back by itself. Refuses a cluster's malformed <c>Failover.*</c> metadata,
/// naming the key.
/// </summary>
internal sealed class FailoverConfigFilter : IProxyConfigFilter
{
    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        ClusterFailover.Parse(cluster, out var error);
        if (error is not null)
        {
            throw new InvalidOperationException(error);
        }

        if (cluster.HealthCheck?.Passive is not null)
        {
            return new(cluster);
        }

        var passive = new PassiveHealthCheckConfig
        {
            Enabled = true,
            Policy = ConnectFailureHealthPolicy.PolicyName,
            ReactivationPeriod = ConnectFailureHealthPolicy.DefaultReactivationPeriod,
        };
        return new(cluster with { HealthCheck = (cluster.HealthCheck ?? new HealthCheckConfig()) with { Passive = passive } });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel) => new(route);
}
