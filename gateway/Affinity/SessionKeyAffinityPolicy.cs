using Gateway.Sessions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.SessionAffinity;

namespace Gateway.Affinity;

/// <summary>
/// YARP session affinity by the request's session key (the <see cref="SessionRequest"/> that session
/// resolution found), for routes with <c>SessionStreams.Affinity</c>: the session goes to its
/// <see cref="Rendezvous"/> choice among the cluster's healthy destinations, or where it moved to when
/// that failed (<see cref="AffinityMoves"/>). A request without a key, or on another route, is left to
/// the cluster's own load-balancing policy (<see cref="AffinityStatus.AffinityKeyNotSet"/>). Nothing is
/// written to the response: the key is the client's own, so no cookie is needed.
/// </summary>
internal sealed class SessionKeyAffinityPolicy(AffinityMoves moves, ILogger<SessionKeyAffinityPolicy> logger) : ISessionAffinityPolicy
{
    public const string PolicyName = "SessionKey";

    private static readonly AffinityResult NotSet = new(null, AffinityStatus.AffinityKeyNotSet);

    public string Name => PolicyName;

    public ValueTask<AffinityResult> FindAffinitizedDestinationsAsync(HttpContext context, ClusterState cluster, SessionAffinityConfig config,
        IReadOnlyList<DestinationState> destinations, CancellationToken cancellationToken)
    {
        if (destinations.Count == 0 || ScopeOf(context, cluster) is not { } scope)
        {
            return new(NotSet);
        }

        return FindAsync(context, cluster, scope, destinations, cancellationToken);
    }

    private async ValueTask<AffinityResult> FindAsync(HttpContext context, ClusterState cluster, AffinityScope scope,
        IReadOnlyList<DestinationState> destinations, CancellationToken cancellationToken)
    {
        var moved = await moves.FindAsync(scope, cancellationToken);
        var chosen = moved is null ? null : ById(destinations, moved);
        if (chosen is null)
        {
            chosen = Rendezvous.Pick(scope.Hash, destinations)!;
            // The first choice among all destinations, healthy or not: when it is not the healthy pick,
            // the session's server has failed and the session moves, once, to be remembered.
            var first = moved ?? Rendezvous.Pick(scope.Hash, cluster.DestinationsState.AllDestinations)?.DestinationId;
            if (first is not null && first != chosen.DestinationId)
            {
                var agreed = await moves.MoveAsync(scope, moved, chosen.DestinationId, cancellationToken);
                chosen = ById(destinations, agreed) ?? chosen;
                AffinityLog.Moved(logger, cluster.ClusterId, first, chosen.DestinationId, "unhealthy");
            }
        }

        context.Features.Set(new AffinityPick(scope));
        return new AffinityResult([chosen], AffinityStatus.OK);
    }

    /// <summary>Without Redis the answer is the same as the asynchronous one; YARP calls the asynchronous one.</summary>
    public AffinityResult FindAffinitizedDestinations(HttpContext context, ClusterState cluster, SessionAffinityConfig config,
        IReadOnlyList<DestinationState> destinations) =>
        FindAffinitizedDestinationsAsync(context, cluster, config, destinations, context.RequestAborted).AsTask().GetAwaiter().GetResult();

    public void AffinitizeResponse(HttpContext context, ClusterState cluster, SessionAffinityConfig config, DestinationState destination)
    {
    }

    public ValueTask AffinitizeResponseAsync(HttpContext context, ClusterState cluster, SessionAffinityConfig config, DestinationState destination,
        CancellationToken cancellationToken) => ValueTask.CompletedTask;

    /// <summary>The request's affinity scope, or null when its route has no affinity or it has no session key.</summary>
    public static AffinityScope? ScopeOf(HttpContext context, ClusterState cluster)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        if (!RouteSessionPolicy.For(route).Affinity || context.Features.Get<SessionRequest>()?.Key.Key is not { } key)
        {
            return null;
        }

        return AffinityScope.Of(cluster.ClusterId, key.TenantSession);
    }

    public static DestinationState? ById(IReadOnlyList<DestinationState> destinations, string id)
    {
        for (var i = 0; i < destinations.Count; i++)
        {
            if (destinations[i].DestinationId == id)
            {
                return destinations[i];
            }
        }

        return null;
    }
}

/// <summary>Set on a request whose destination affinity chose, for the failover step (which moves it on a connect failure).</summary>
internal sealed record AffinityPick(AffinityScope Scope);
