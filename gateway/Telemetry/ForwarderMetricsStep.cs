using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Telemetry;

/// <summary>YARP 2.3 reports through an EventSource, not a Meter; this first proxy-pipeline step
/// records each forwarding's result so it reaches /metrics, for every route.</summary>
internal static class ForwarderMetricsStep
{
    public static IReverseProxyApplicationBuilder UseForwarderMetrics(this IReverseProxyApplicationBuilder proxy)
    {
        var metrics = proxy.ApplicationServices.GetRequiredService<GatewayMetrics>();
        // The RequestDelegate form: no closure over the request for each stream's whole life.
        proxy.Use(next => async context =>
        {
            await next(context);
            if (context.Features.Get<IForwarderErrorFeature>() is { } error)
            {
                metrics.ForwarderFailed(error.Error.ToString());
            }
            else
            {
                metrics.ForwarderStopped(context.Response.StatusCode);
            }
        });
        return proxy;
    }
}
