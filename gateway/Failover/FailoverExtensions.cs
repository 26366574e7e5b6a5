using Gateway.Utilities;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Transforms;

namespace Gateway.Failover;

internal static class FailoverExtensions
{
    /// <summary>Failover before the first byte (<see cref="FailoverStep"/>), passive health on by default
    /// (<see cref="FailoverConfigFilter"/>, <see cref="ConnectFailureHealthPolicy"/>), the destinations' health gauge.</summary>
    public static IReverseProxyBuilder AddFailover(this IReverseProxyBuilder proxy)
    {
        proxy.Services.AddGatewayOptions<FailoverOptions>(FailoverOptions.SectionName);
        proxy.Services.AddSingleton<FailoverStep>();
        proxy.Services.AddSingleton<DestinationHealthGauge>();
        proxy.Services.AddSingleton<IPassiveHealthCheckPolicy, ConnectFailureHealthPolicy>();
        proxy.AddConfigFilter<FailoverConfigFilter>();
        // The response headers arrived: no other attempt will be made, so the body's copy is given back. (YARP also
        // runs response transforms for an attempt that failed, without a response: that one may be retried.)
        proxy.AddTransforms(transforms => transforms.AddResponseTransform(transform =>
        {
            if (transform.ProxyResponse is not null)
            {
                transform.HttpContext.Features.Get<ReplayableBody>()?.Release();
            }

            return ValueTask.CompletedTask;
        }));
        return proxy;
    }

    /// <summary>Wraps load balancing, passive health and the forwarder: put it after session affinity.</summary>
    public static IReverseProxyApplicationBuilder UseFailover(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.ApplicationServices.GetRequiredService<DestinationHealthGauge>();
        var step = proxy.ApplicationServices.GetRequiredService<FailoverStep>();
        proxy.Use(next => context => step.InvokeAsync(context, next));
        return proxy;
    }
}
