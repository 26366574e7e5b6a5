using Yarp.ReverseProxy.Configuration;

namespace Gateway.Sessions;

/// <summary>
/// Rejects bad <c>SessionStreams</c> route metadata when YARP loads its configuration, so a typo
/// stops the gateway at start (and a bad reload is refused) with a message naming the key.
/// </summary>
internal sealed class RouteSessionPolicyValidator : IProxyConfigFilter
{
    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel) => new(cluster);

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
    {
        var error = RouteSessionPolicy.Parse(route, out _);
        if (error is not null)
        {
            throw new InvalidOperationException(error);
        }

        return new(route);
    }
}
