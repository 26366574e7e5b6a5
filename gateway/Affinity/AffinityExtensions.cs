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
        services.AddSingleton<ISessionAffinityPolicy, SessionKeyAffinityPolicy>();
        services.AddSingleton<IProxyConfigFilter, AffinityConfigFilter>();
        return services;
    }
}
