using Gateway.Affinity;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Failover;

/// <summary>
/// Around YARP's load balancing, passive health and forwarder: an attempt that failed before the model server
/// could have answered (<see cref="AttemptFailure"/>) is made again on another destination of the cluster, up to
/// the cluster's <see cref="ClusterFailover.MaxAttempts"/>, with the same body bytes (<see cref="ReplayableBody"/>).
/// Nothing is retried once a response byte was written. Everything outside this step (the session claim, limits,
/// token counting, the usage record) sees one request. A session pinned by affinity to a destination that could
/// not be reached moves, on this request, to its next choice, and stays there (<see cref="AffinityMoves"/>).
/// </summary>
internal sealed class FailoverStep(AffinityMoves moves, GatewayMetrics metrics, IOptions<FailoverOptions> options, ILogger<FailoverStep> logger)
{
    private readonly int _maxBodyBytes = options.Value.MaxBodyBytes;

    /// <summary>A cluster with one destination, or without failover, goes straight on (no state machine of this step's).</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var proxy = context.GetReverseProxyFeature();
        var cluster = proxy.Route.Cluster;
        var settings = cluster is null ? ClusterFailover.Default : Settings(cluster);
        if (cluster is null || cluster.DestinationsState.AllDestinations.Count < 2 || settings.MaxAttempts < 2)
        {
            return next(context);
        }

        return AttemptAsync(context, proxy, cluster, settings, next);
    }

    private async Task AttemptAsync(HttpContext context, IReverseProxyFeature proxy, ClusterState cluster, ClusterFailover settings, RequestDelegate next)
    {
        var body = Replayable(context);
        List<DestinationState>? tried = null;
        for (var attempt = 1; ; attempt++)
        {
            await next(context);
            var failure = AttemptFailures.Of(context.Features.Get<IForwarderErrorFeature>());
            if (failure == AttemptFailure.None || proxy.ProxiedDestination is not { } failed)
            {
                return;
            }

            (tried ??= []).Add(failed);
            var why = attempt >= settings.MaxAttempts ? $"{settings.MaxAttempts} attempts made"
                : context.Response.HasStarted ? "the response has started"
                : context.RequestAborted.IsCancellationRequested ? "the request was cancelled"
                : failure == AttemptFailure.Reset && !settings.ResendAfterReset ? $"{ClusterFailover.ResendAfterResetKey} is false"
                : body is { CanRewind: false } ? $"its body is over Gateway:Failover:MaxBodyBytes ({_maxBodyBytes} bytes) and was sent in part"
                : null;
            var destinations = why is null ? await NextAsync(context, cluster, failed, tried, failure) : null;
            if (destinations is null)
            {
                if (why is not null || attempt > 1)
                {
                    FailoverLog.NotRetried(logger, cluster.ClusterId, failed.DestinationId, failure.ToLabel(), why ?? "no other destination");
                }

                return;
            }

            FailoverLog.Retrying(logger, attempt, cluster.ClusterId, failed.DestinationId, failure.ToLabel());
            metrics.UpstreamRetried(proxy.Route.Config.RouteId, cluster.ClusterId, failure.ToLabel());
            body?.Rewind();
            proxy.AvailableDestinations = destinations;
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.StatusCode = StatusCodes.Status200OK;
        }
    }

    /// <summary>The destinations the next attempt may use: the cluster's available ones it has not tried (when all of
    /// them have been, every one it has not tried: health is a guess, and a restarted server is found at once). For
    /// a session pinned by affinity, its next choice among those, where it moves when the failed one was unreachable.</summary>
    private async ValueTask<IReadOnlyList<DestinationState>?> NextAsync(HttpContext context, ClusterState cluster, DestinationState failed,
        List<DestinationState> tried, AttemptFailure failure)
    {
        var candidates = Untried(cluster.DestinationsState.AvailableDestinations, tried);
        if (candidates.Count == 0)
        {
            candidates = Untried(cluster.DestinationsState.AllDestinations, tried);
        }

        if (candidates.Count == 0)
        {
            return null;
        }

        if (context.Features.Get<AffinityPick>() is not { } pick)
        {
            return candidates;
        }

        var to = Rendezvous.Pick(pick.Scope.Hash, candidates)!;
        if (!failure.NeverReached())
        {
            return [to]; // the server is alive (it took the request): the session stays, this answer comes from elsewhere
        }

        // Not bound to the request: the move is for the session's later requests too.
        var agreed = await moves.MoveAsync(pick.Scope, failed.DestinationId, to.DestinationId, CancellationToken.None);
        AffinityLog.Moved(logger, cluster.ClusterId, failed.DestinationId, agreed, failure.ToLabel());
        return [SessionKeyAffinityPolicy.ById(candidates, agreed) ?? to];
    }

    private static List<DestinationState> Untried(IReadOnlyList<DestinationState> destinations, List<DestinationState> tried)
    {
        var untried = new List<DestinationState>(destinations.Count);
        foreach (var destination in destinations)
        {
            if (!tried.Contains(destination))
            {
                untried.Add(destination);
            }
        }

        return untried;
    }

    /// <summary>Puts a <see cref="ReplayableBody"/> under the forwarder when the request has a body.</summary>
    private ReplayableBody? Replayable(HttpContext context)
    {
        var request = context.Request;
        if (request.ContentLength == 0 || (request.ContentLength is null && !request.Headers.TransferEncoding.Any(v => v?.Contains("chunked", StringComparison.OrdinalIgnoreCase) == true)))
        {
            return null;
        }

        var body = new ReplayableBody(request.Body, _maxBodyBytes);
        request.Body = body;
        context.Features.Set(body);
        context.Response.RegisterForDispose(body);
        return body;
    }

    /// <summary>Read once per cluster configuration (a reload makes a new model); validated at start by the config filter.</summary>
    private static ClusterFailover Settings(ClusterState cluster) =>
        s_settings.GetValue(cluster.Model, static model => model.Config.Metadata is null ? ClusterFailover.Default : ClusterFailover.Parse(model.Config, out _));

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<ClusterModel, ClusterFailover> s_settings = new();
}
