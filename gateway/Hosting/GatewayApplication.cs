using Gateway.Admin;
using Gateway.Affinity;
using Gateway.Chat;
using Gateway.Draining;
using Gateway.Failover;
using Gateway.Health;
using Gateway.Limits;
using Gateway.Resume;
using Gateway.Savings;
using Gateway.SessionApi;
using Gateway.Sessions;
using Gateway.Streams;
using Gateway.Telemetry;
using Gateway.Tokens;

namespace Gateway.Hosting;

/// <summary>The gateway's table of contents: what it is made of, in the order a request meets it.</summary>
internal static class GatewayApplication
{
    /// <summary>Used when neither <c>--urls</c>, <c>ASPNETCORE_URLS</c>, <c>ASPNETCORE_HTTP_PORTS</c> nor <c>Kestrel:Endpoints</c> says where to listen.</summary>
    public const string DefaultUrl = "http://localhost:8080";

    public static WebApplicationBuilder AddGateway(this WebApplicationBuilder builder)
    {
        builder.UseDefaultUrl(DefaultUrl);
        builder.AddGatewayTelemetry();
        builder.Services.AddSessions();
        builder.Services.AddTokenCounting();
        builder.Services.AddSavings();
        builder.Services.AddPricing();
        builder.Services.AddSessionStreams();
        builder.Services.AddResume();
        builder.Services.AddSessionKeyAffinity();
        builder.Services.AddAdmin();
        builder.Services.AddTrustedProxies();
        builder.Services.AddTenantLimits();
        builder.Services.AddGracefulShutdown();
        builder.AddChatPage();
        builder.Services.AddRequestTimeouts(); // what a route's Timeout / TimeoutPolicy uses; none by default
        builder.Services.AddReverseProxy()
            .LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"))
            .AddConfigFilter<LlmTimeouts>()
            .AddFailover()
            .AddDraining();
        return builder;
    }

    public static WebApplication MapGateway(this WebApplication app)
    {
        app.UseTrustedProxies();
        app.UseRouting();
        app.UseRequestTimeouts();
        app.UseSessionResolution();
        app.UseRateLimiter();
        app.UseStreamLimits();
        app.MapHealth();
        app.MapGatewayTelemetry();
        app.MapSessionEndpoints();
        app.MapAdmin();
        app.MapChatPage();
        app.MapReverseProxy(proxy =>
        {
            proxy.UseForwarderMetrics();
            proxy.UseSessionStreams();
            proxy.UseSessionAffinity();
            proxy.UseFailover();
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
        });
        return app;
    }
}
