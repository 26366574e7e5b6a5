using Gateway.Sessions.Redis;
using Gateway.Utilities;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Sessions;

internal static class SessionsExtensions
{
    /// <summary>Registers session keys (options from <c>Gateway:Sessions</c>), the session registry (in memory,
    /// or shared through Redis), and the start-time check of every route's <c>SessionStreams.*</c> metadata.</summary>
    public static IServiceCollection AddSessions(this IServiceCollection services)
    {
        services.AddGatewayOptions<SessionKeyOptions>(SessionKeyOptions.SectionName);
        services.TryAddSingleton(TimeProvider.System); // a test may bring its own clock
        services.AddSessionRegistry();
        services.AddSingleton<SessionKeyResolver>();
        services.AddSingleton<IProxyConfigFilter, RouteSessionPolicyValidator>();
        return services;
    }
}
