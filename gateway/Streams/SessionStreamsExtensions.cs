using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Tokens;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Streams;

internal static class SessionStreamsExtensions
{
    /// <summary>Registers the session registry, key resolution and the proxy step, with options from <c>Gateway:Sessions</c>.</summary>
    public static IServiceCollection AddSessionStreams(this IServiceCollection services)
    {
        services.AddOptions<SessionKeyOptions>()
            .BindConfiguration(SessionKeyOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<TokenOptions>()
            .BindConfiguration(TokenOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<SavingsOptions>()
            .BindConfiguration(SavingsOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<PricingOptions>()
            .BindConfiguration(PricingOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddSingleton<ModelPrices>();
        services.TryAddSingleton(TimeProvider.System); // a test may bring its own clock
        services.AddSingleton<SavingsEstimator>();
        services.AddSingleton<StreamAccounting>();
        services.AddSingleton<SessionSavings>();
        services.AddSingleton<TokenizerCounting>();
        services.AddHostedService(sp => sp.GetRequiredService<TokenizerCounting>());
        services.AddSessionRegistry();
        services.AddSingleton<SessionKeyResolver>();
        services.AddSingleton<SessionStreamStep>();
        services.AddSingleton<IProxyConfigFilter, RouteSessionPolicyValidator>();
        return services;
    }

    /// <summary>Adds the session-stream step to YARP's proxy pipeline, before load balancing and the forwarder.</summary>
    public static IReverseProxyApplicationBuilder UseSessionStreams(this IReverseProxyApplicationBuilder proxy)
    {
        var step = proxy.ApplicationServices.GetRequiredService<SessionStreamStep>();
        proxy.Use(step.InvokeAsync);
        return proxy;
    }
}
