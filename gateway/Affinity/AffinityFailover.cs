using System.Net.Http;
using System.Net.Sockets;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Affinity;

/// <summary>
/// After the forwarder: when a request that affinity sent to a destination could not connect to it, the
/// session moves to its next choice among the other healthy destinations, so its next request does not
/// wait for YARP's health checks to notice. The failed request itself is not retried (the client gets
/// the 502 YARP wrote and retries); a response that arrived, even an error status, moves nothing.
/// </summary>
internal sealed class AffinityFailover(AffinityMoves moves, ILogger<AffinityFailover> logger)
{
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        await next(context);
        if (context.Features.Get<AffinityPick>() is not { } pick
            || context.Features.Get<IForwarderErrorFeature>() is not { Error: ForwarderError.Request } error
            || !IsConnectFailure(error.Exception))
        {
            return;
        }

        var proxy = context.GetReverseProxyFeature();
        if (proxy.ProxiedDestination is not { } failed || proxy.Route.Cluster is not { } cluster)
        {
            return;
        }

        var to = Rendezvous.Pick(pick.Scope.Hash, cluster.DestinationsState.AvailableDestinations, except: failed);
        if (to is null)
        {
            return; // nowhere else to go: the session stays, and its next request tries again
        }

        // Not bound to the request: it has failed already, and the move is for its successors.
        var agreed = await moves.MoveAsync(pick.Scope, failed.DestinationId, to.DestinationId, CancellationToken.None);
        AffinityLog.Moved(logger, cluster.ClusterId, failed.DestinationId, agreed, "connect_failure");
    }

    /// <summary>The connection to the destination could not be made (refused, unreachable, timed out):
    /// the request never reached it.</summary>
    public static bool IsConnectFailure(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }
                || e is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.TimedOut })
            {
                return true;
            }
        }

        return false;
    }
}
