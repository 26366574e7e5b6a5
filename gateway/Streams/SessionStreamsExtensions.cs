using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Streams;

internal static class SessionStreamsExtensions
{
    /// <summary>Registers the proxy step that claims, taps, ends and accounts for session streams; it needs
    /// <c>AddSessions</c>, <c>AddTokenCounting</c>, <c>AddSavings</c> and <c>AddPricing</c>.</summary>
    public static IServiceCollection AddSessionStreams(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System); // a test may bring its own clock
        services.AddSingleton<StreamAdmission>();
        services.AddSingleton<StreamOpening>();
        services.AddSingleton<StreamEnding>();
        services.AddSingleton<StreamRecording>();
        services.AddSingleton<SessionStreamStep>();
        return services;
    }

    /// <summary>Adds the session-stream step to YARP's proxy pipeline, before load balancing and the forwarder.</summary>
    public static IReverseProxyApplicationBuilder UseSessionStreams(this IReverseProxyApplicationBuilder proxy)
    {
        var step = proxy.ApplicationServices.GetRequiredService<SessionStreamStep>();
        proxy.Use(next => context => step.InvokeAsync(context, next));
        return proxy;
    }
}
