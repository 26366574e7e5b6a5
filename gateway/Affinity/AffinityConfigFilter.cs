using Gateway.Sessions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.SessionAffinity;

namespace Gateway.Affinity;

/// <summary>
/// Turns YARP session affinity on, with <see cref="SessionKeyAffinityPolicy"/>, for each cluster that a
/// route with <c>SessionStreams.Affinity</c> sends to; the cluster keeps its own load-balancing policy
/// for requests without a session key. A cluster with affinity of its own (a cookie, say) is refused
/// for such a route, naming the key.
/// </summary>
internal sealed class AffinityConfigFilter(IServiceProvider services) : IProxyConfigFilter
{
    /// <summary>YARP requires a key name; this policy reads the session key instead, so it is only a label.</summary>
    public const string KeyName = RouteSessionPolicy.AffinityKey;

    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        if (cluster.SessionAffinity is { Enabled: true } || !UsedByAffinityRoute(cluster.ClusterId))
        {
            return new(cluster);
        }

        return new(cluster with
        {
            SessionAffinity = new SessionAffinityConfig
            {
                Enabled = true,
                Policy = SessionKeyAffinityPolicy.PolicyName,
                FailurePolicy = SessionAffinityConstants.FailurePolicies.Redistribute,
                AffinityKeyName = KeyName,
            },
        });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
    {
        if (RouteSessionPolicy.Parse(route, out var policy) is null && policy.Affinity
            && cluster?.SessionAffinity is { Enabled: true, Policy: var other } && other != SessionKeyAffinityPolicy.PolicyName)
        {
            throw new InvalidOperationException(
                $"ReverseProxy:Routes:{route.RouteId}:Metadata:{RouteSessionPolicy.AffinityKey} is 'true' but cluster '{cluster.ClusterId}' has its own SessionAffinity policy '{other}'; remove one of them.");
        }

        return new(route);
    }

    /// <summary>YARP filters clusters before routes and shows a cluster filter no routes, so the routes are
    /// read from the configuration providers: the snapshot YARP is applying is their current one.</summary>
    private bool UsedByAffinityRoute(string clusterId)
    {
        foreach (var provider in services.GetServices<IProxyConfigProvider>())
        {
            foreach (var route in provider.GetConfig().Routes)
            {
                if (route.ClusterId == clusterId && RouteSessionPolicy.Parse(route, out var policy) is null && policy.Affinity)
                {
                    return true;
                }
            }
        }

        return false;
    }
}
