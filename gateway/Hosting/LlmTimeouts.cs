using Yarp.ReverseProxy.Configuration;

namespace Gateway.Hosting;

/// <summary>
/// Timeouts sized for LLM work. YARP's one per-request timeout, the cluster's <c>HttpRequest.ActivityTimeout</c>,
/// is an idle timeout: it restarts on every byte either way, so it bounds the silence before the first byte
/// (queueing, prefill, a reasoning model thinking) and between two chunks, never a stream's total length.
/// YARP's default is 100 s, shorter than a busy model server's queue or a long non-streaming answer; a
/// cluster that does not set it gets <see cref="DefaultActivityTimeout"/> here. A route may still bound its
/// whole request with YARP's <c>Timeout</c> / <c>TimeoutPolicy</c> (ASP.NET Core request timeouts, which
/// <see cref="GatewayApplication"/> adds).
/// </summary>
internal sealed class LlmTimeouts : IProxyConfigFilter
{
    /// <summary>The longest silence of a model server, before its first byte or mid-stream, that the gateway waits out.</summary>
    public static readonly TimeSpan DefaultActivityTimeout = TimeSpan.FromMinutes(10);

    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        if (cluster.HttpRequest?.ActivityTimeout is { } configured)
        {
            // YARP would take a silence of no length as its token's "now" and fail every request.
            return configured > TimeSpan.Zero
                ? new(cluster)
                : throw new InvalidOperationException(
                    $"ReverseProxy:Clusters:{cluster.ClusterId}:HttpRequest:ActivityTimeout is {configured}; it must be positive (the longest silence of the model server to wait out).");
        }

        var request = cluster.HttpRequest ?? new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig();
        return new(cluster with { HttpRequest = request with { ActivityTimeout = DefaultActivityTimeout } });
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel) =>
        route.Timeout is { } timeout && timeout <= TimeSpan.Zero
            ? throw new InvalidOperationException(
                $"ReverseProxy:Routes:{route.RouteId}:Timeout is {timeout}; it must be positive, or absent for no bound on a request's total length.")
            : new(route);
}
