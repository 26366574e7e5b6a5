using Gateway.Utilities;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.SessionAffinity;

namespace Gateway.Affinity;

internal static class AffinityExtensions
{
    /// <summary>Session affinity by session key, for routes with <c>SessionStreams.Affinity</c>; options from <c>Gateway:Affinity</c>.</summary>
    public static IServiceCollection AddSessionKeyAffinity(this IServiceCollection services)
    {
        services.AddGatewayOptions<AffinityOptions>(AffinityOptions.SectionName);
        services.AddSingleton<AffinityMoves>();
        services.AddSingleton<AffinityFailover>();
        services.AddSingleton<ISessionAffinityPolicy, SessionKeyAffinityPolicy>();
        services.AddSingleton<IProxyConfigFilter, AffinityConfigFilter>();
        return services;
    }

    /// <summary>Moves a session whose destination refused the connection (see <see cref="AffinityFailover"/>).</summary>
    public static IReverseProxyApplicationBuilder UseSessionKeyFailover(this IReverseProxyApplicationBuilder proxy)
    {
        var failover = proxy.ApplicationServices.GetRequiredService<AffinityFailover>();
        proxy.Use(next => context => failover.InvokeAsync(context, next));
        return proxy;
    }
}
