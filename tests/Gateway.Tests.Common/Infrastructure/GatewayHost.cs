using Gateway.Hosting;
using Gateway.Sessions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Infrastructure;

/// <summary>The gateway on real Kestrel, bound to 127.0.0.1 on a port the OS picks, configured like
/// the shipped appsettings.json (one catch-all route with session streams on) unless told otherwise.</summary>
internal sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GatewayHost(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public IServiceProvider Services => _app.Services;

    public SessionRegistry Registry => _app.Services.GetRequiredService<SessionRegistry>();

    /// <summary>The configuration a test starts from: one catch-all route (id <paramref name="routeId"/>) to cluster "llm" at <paramref name="upstream"/>.
    /// A test that reads metrics gives its route a unique id: metrics carry the route as a label.</summary>
    public static Dictionary<string, string?> DefaultSettings(Uri upstream, string routeId = "llm") => new()
    {
        [$"ReverseProxy:Routes:{routeId}:ClusterId"] = "llm",
        [$"ReverseProxy:Routes:{routeId}:Match:Path"] = "{**catch-all}",
        [$"ReverseProxy:Routes:{routeId}:Metadata:SessionStreams"] = "true",
        ["ReverseProxy:Clusters:llm:Destinations:primary:Address"] = upstream.ToString(),
    };

    public static Task<GatewayHost> StartAsync(Uri upstream, Action<Dictionary<string, string?>>? configure = null,
        Action<WebApplicationBuilder>? builder = null, string routeId = "llm")
    {
        var settings = DefaultSettings(upstream, routeId);
        configure?.Invoke(settings);
        return StartAsync(settings, builder);
    }

    public static async Task<GatewayHost> StartAsync(IDictionary<string, string?> settings, Action<WebApplicationBuilder>? configureBuilder = null)
    {
        var app = Build(settings, configureBuilder);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        return new GatewayHost(app, new Uri(address.TrimEnd('/') + "/"));
    }

    /// <summary>Builds, starts and stops a host: what a start-up validation test expects to throw
    /// (pass it to <c>Assert.ThrowsAnyAsync</c>), or its control expects to succeed.</summary>
    public static async Task StartAndStopAsync(IDictionary<string, string?> settings)
    {
        await using var app = Build(settings);
        await app.StartAsync();
        await app.StopAsync();
    }

    /// <summary>Builds without starting, so a test can see what start-up validation does.</summary>
    public static WebApplication Build(IDictionary<string, string?> settings, Action<WebApplicationBuilder>? configureBuilder = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Testing",
            ContentRootPath = AppContext.BaseDirectory,
            // No file watchers: a suite starts hundreds of hosts, and each watcher takes one of the user's
            // inotify instances (128 by default), shared with every other process of the user.
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });

        // Hermetic: no appsettings.json from the output folder, no environment variables.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        configureBuilder?.Invoke(builder);
        builder.AddGateway();
        var app = builder.Build();
        app.MapGateway();
        return app;
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}
