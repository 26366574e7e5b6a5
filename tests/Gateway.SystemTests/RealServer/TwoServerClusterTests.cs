using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>One YARP cluster with two llama-server destinations: both serve streams through the
/// gateway (the ground later session-affinity work stands on).</summary>
[Collection(LlamaServerCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class TwoServerClusterTests(LlamaServerFixture fixture)
{
    [Theory]
    [MemberData(nameof(LlamaApi.All), MemberType = typeof(LlamaApi))]
    public async Task ClusterOfTwoServers_RoundRobin_EachServerGeneratesItsShare(string apiName)
    {
        const int perServer = 2;
        const int length = 16;
        var api = LlamaApi.Named(apiName);
        await using var second = await LlamaServer.StartAsync();
        LlamaServer[] servers = [fixture.Server, second];
        var route = "rs" + Guid.NewGuid().ToString("N")[..10];
        await using var gateway = await GatewayHost.StartAsync(fixture.Server.BaseAddress, settings =>
        {
            settings["ReverseProxy:Clusters:llm:Destinations:second:Address"] = second.BaseAddress.ToString();
            settings["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "RoundRobin";
        }, routeId: route);
        var marks = servers.Select(s => s.LineCount).ToArray();
        var before = await Task.WhenAll(servers.Select(s => s.TokensPredictedAsync()));

        using var client = StreamReading.NewClient(gateway.BaseAddress);
        for (var i = 0; i < perServer * servers.Length; i++)
        {
            var transcript = await StreamReading.SendAndReadAsync(client, api.Request($"question {i}", $"cluster-{i}", length));
            Assert.True(api.Completed(transcript), string.Join('\n', transcript.Lines));
            Assert.Equal(length, api.CompletionTokens(transcript));
        }

        // Round robin alternates: each server released two slots and counted two answers of its own.
        for (var s = 0; s < servers.Length; s++)
        {
            await servers[s].WaitForReleasesAsync(perServer, marks[s]);
            Assert.Equal(perServer * length, await servers[s].TokensPredictedAsync() - before[s]);
        }
    }
}
