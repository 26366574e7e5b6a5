using Gateway.Utilities;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gateway.Telemetry;

internal static class TelemetryExtensions
{
    public const string ScrapePath = "/metrics";

    /// <summary>Metrics (the gateway's, ASP.NET Core's, Kestrel's, HttpClient's, the runtime's, YARP's)
    /// for Prometheus at <see cref="ScrapePath"/>; traces, metrics and logs over OTLP when
    /// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set.</summary>
    public static WebApplicationBuilder AddGatewayTelemetry(this WebApplicationBuilder builder)
    {
        builder.Services.AddGatewayOptions<TelemetryOptions>(TelemetryOptions.SectionName);
        builder.Services.AddSingleton<GatewayMetrics>();
        builder.Services.AddSingleton<ModelLabels>();

        var otel = builder.Services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("llm-gateway"))
            .WithMetrics(metrics => metrics
                .AddMeter(GatewayMetrics.MeterName)
                .AddMeter("Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.RateLimiting")
                .AddMeter("System.Net.Http", "System.Runtime")
                // Three runtime gauges end in "_count", which Prometheus reserves for histograms and
                // summaries (promtool check metrics rejects them); they are exported under clearer names.
                .AddView("dotnet.assembly.count", "dotnet.assembly.loaded")
                .AddView("dotnet.process.cpu.count", "dotnet.process.cpu.cores")
                .AddView("dotnet.timer.count", "dotnet.timer.active")
                // No response cache: a scrape shows the values of that moment (Prometheus scrapes
                // seldom enough that building the text each time costs nothing worth saving).
                .AddPrometheusExporter(exporter => exporter.ScrapeResponseCacheDurationMilliseconds = 0));

        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            // UseOtlpExporter exports every signal the builder has; logs are named so that it reads as meant: the
            // Gateway.Usage records reach a collector as log records whose attributes are their fields.
            otel.WithTracing(tracing => tracing
                    .AddSource(GatewayActivity.SourceName, "Microsoft.AspNetCore", "Yarp.ReverseProxy", "System.Net.Http"))
                .WithLogging()
                .UseOtlpExporter();
        }

        return builder;
    }

    public static IEndpointRouteBuilder MapGatewayTelemetry(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint(ScrapePath);
        return endpoints;
    }
}
