using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Bench.Proxies;

/// <summary>"Features off": a bare YARP host with no gateway code, one catch-all route to the
/// upstream, logging at the levels the gateway ships with. Run as <c>Gateway.Bench --plain-yarp
/// --urls URL --upstream URL</c>, so it is a process of its own.</summary>
internal static class PlainYarpHost
{
    /// <summary>The process's allocated bytes so far (<c>GC.GetTotalAllocatedBytes</c>), for the allocations phase.</summary>
    public const string AllocatedPath = "/_bench/allocated";

    public static async Task RunAsync(string[] args)
    {
        string Arg(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault()
            ?? throw new ArgumentException($"--plain-yarp needs {name}");

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["urls"] = Arg("--urls"),
            ["Logging:LogLevel:Default"] = "Information",
            ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
            ["Logging:LogLevel:Yarp"] = "Warning",
        });
        builder.Services.AddReverseProxy().LoadFromMemory(
            [new RouteConfig { RouteId = "llm", ClusterId = "llm", Match = new RouteMatch { Path = "{**catch-all}" } }],
            [new ClusterConfig
            {
                ClusterId = "llm",
                Destinations = new Dictionary<string, DestinationConfig> { ["primary"] = new() { Address = Arg("--upstream") } },
            }]);

        var app = builder.Build();
        app.MapGet("/healthz", () => "ok");
        app.MapGet(AllocatedPath, () => GC.GetTotalAllocatedBytes(precise: true).ToString(System.Globalization.CultureInfo.InvariantCulture));
        app.MapReverseProxy();
        await app.RunAsync();
    }
}
