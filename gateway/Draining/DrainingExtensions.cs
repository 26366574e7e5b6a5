using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Transforms;

namespace Gateway.Draining;

internal static class DrainingExtensions
{
    /// <summary>Puts the <see cref="DrainingHandler"/> under YARP's forwarder and hands each drain
    /// route's <see cref="DrainContext"/> to it on the outgoing request.</summary>
    public static IReverseProxyBuilder AddDraining(this IReverseProxyBuilder proxy)
    {
        proxy.Services.AddSingleton<IForwarderHttpClientFactory, DrainingHttpClientFactory>();
        proxy.AddTransforms(transforms => transforms.AddRequestTransform(transform =>
        {
            if (transform.HttpContext.Features.Get<DrainContext>() is { } drain)
            {
                transform.ProxyRequest.Options.Set(DrainContext.OptionKey, drain);
            }

            return ValueTask.CompletedTask;
        }));
        return proxy;
    }
}
