using Gateway.Tests.Infrastructure;
using MockLlm;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.RealServer;

/// <summary>
/// A real llama-server as the one live destination of a cluster whose other destination is down: every request
/// is answered whole, the server generates each answer once (its own token counter), and passive health leaves
/// the dead one out after the first attempt. YARP's active check on <c>/health</c>, the documented example, finds
/// llama-server healthy and the dead one not: a mock in the same cluster counts the probe rounds.
/// </summary>
[Collection(LlamaServerCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class FailoverRealServerTests(LlamaServerFixture fixture)
{
    [Theory]
    [MemberData(nameof(LlamaApi.All), MemberType = typeof(LlamaApi))]
    public async Task OneDestinationDown_EveryRequestAnsweredByLlamaServer_EachGeneratedOnce(string apiName)
    {
        const int requests = 4;
        const int length = 8;
        var api = LlamaApi.Named(apiName);
        var route = "rsf" + Guid.NewGuid().ToString("N")[..10];
        using var metrics = new MetricRecorder(route);
        // A third destination, last alphabetically so no request goes there, whose /health counts the prober's rounds.
        await using var counter = await MockLlmServer.StartAsync();
        await using var gateway = await GatewayHost.StartAsync(fixture.Server.BaseAddress, settings =>
        {
            settings["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "FirstAlphabetical";
            settings["ReverseProxy:Clusters:llm:Destinations:a-down:Address"] = ClosedPorts.Address().ToString();
            settings["ReverseProxy:Clusters:llm:Destinations:z-counter:Address"] = counter.BaseAddress.ToString();
            settings["ReverseProxy:Clusters:llm:Metadata:ConsecutiveFailuresHealthPolicy.Threshold"] = "1";
            // The documented active check on llama-server's own endpoint, beside the passive one.
            settings["ReverseProxy:Clusters:llm:HealthCheck:Active:Enabled"] = "true";
            settings["ReverseProxy:Clusters:llm:HealthCheck:Active:Interval"] = "00:00:01";
            settings["ReverseProxy:Clusters:llm:HealthCheck:Active:Timeout"] = "00:00:05";
            settings["ReverseProxy:Clusters:llm:HealthCheck:Active:Policy"] = "ConsecutiveFailures";
            settings["ReverseProxy:Clusters:llm:HealthCheck:Active:Path"] = "/health";
        }, routeId: route);
        var mark = fixture.Server.LineCount;
        var before = await fixture.Server.TokensPredictedAsync();

        using var client = StreamReading.NewClient(gateway.BaseAddress);
        for (var i = 0; i < requests; i++)
        {
            var transcript = await StreamReading.SendAndReadAsync(client, api.Request($"question {i}", $"failover-{i}", length));
            Assert.True(api.Completed(transcript), string.Join('\n', transcript.Lines));
            Assert.Equal(length, api.CompletionTokens(transcript));
        }

        await fixture.Server.WaitForReleasesAsync(requests, mark);
        Assert.Equal(requests * length, await fixture.Server.TokensPredictedAsync() - before);
        // At most the first request found the dead destination (its probe may have found it first).
        Assert.InRange(metrics.All("llm_gateway.upstream.retries").Count, 0, 1);
        Assert.Empty(counter.Ledger.Snapshot());

        // A probe round ends before the next begins: once the counter has had two probes, the first round's verdicts stand.
        await counter.HealthProbes.WaitForAsync(2, Wait.Timeout);
        var state = gateway.Services.GetRequiredService<IProxyStateLookup>();
        Assert.True(state.TryGetCluster("llm", out var cluster));
        Assert.Equal(DestinationHealth.Healthy, cluster.Destinations["primary"].Health.Active);
        Assert.Equal(DestinationHealth.Unhealthy, cluster.Destinations["a-down"].Health.Active);
    }
}
