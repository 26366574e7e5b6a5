using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// Runs alone: every gateway host in this test process exports the same meter name, and an
/// OpenTelemetry MeterProvider listens by name across the process, so while other tests' hosts are
/// alive this host's /metrics also carries their series, duplicates included, which the real
/// Prometheus may refuse. (One gateway per process in production: no such mixing.)
/// </summary>
[Collection(PrometheusCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class PrometheusServerTests
{
    [Fact]
    public async Task RealPrometheusScrapesGateway_PromQl_ReturnsTheTokensSavedWeCaused()
    {
        var route = "prom" + Guid.NewGuid().ToString("N")[..8];
        var scrapes = new ScrapeSignal();
        await using var stack = await Stack.StartAsync(routeId: route,
            builder: b => b.Services.AddSingleton<IStartupFilter>(scrapes));
        await using var prometheus = await PrometheusServer.StartAsync(stack.Gateway.BaseAddress);

        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: 2);
        var longAnswer = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };
        using var old = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "prom", maxTokens: 50, headers: longAnswer));
        await stack.WaitForEntryAsync("prom", e => e.TokensSent >= 3);
        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "short", "prom", maxTokens: 3));
        await StreamReading.ReadToEndAsync(old);
        await ended.WaitAsync();
        var scraped = PromText.Sum(await PromText.ScrapeAsync(stack), "llm_gateway_cancellation_tokens_saved_sum", ("route", route));
        Assert.True(scraped > 0);

        var query = $"sum(llm_gateway_cancellation_tokens_saved_sum{{job=\"llm-gateway\",route=\"{route}\",reason=\"superseded\"}})";
        await scrapes.WaitForMoreAsync(3);
        var answer = await prometheus.QueryScalarAsync(query);
        Assert.True(scraped == answer, $"PromQL {query} returned {answer?.ToString() ?? "nothing"}, /metrics had {scraped}. Targets: {await prometheus.TargetsAsync()}");
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PrometheusCollection
{
    public const string Name = "Real Prometheus (alone)";
}
