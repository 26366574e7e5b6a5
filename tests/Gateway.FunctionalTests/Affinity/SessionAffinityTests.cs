using System.Net;
using MockLlm;

namespace Gateway.Tests.Affinity;

/// <summary>Session affinity over the wire: three mock-llm destinations behind one gateway, each mock's
/// ledger showing where the requests of each session went.</summary>
public sealed class SessionAffinityTests
{
    [Fact]
    public async Task SameKey_ManyRequests_AllReachOneDestination_TheComputedOne()
    {
        await using var cluster = await AffinityCluster.StartAsync();
        string[] sessions = ["conversation-a", "conversation-b", "conversation-c", "conversation-d"];

        for (var round = 0; round < 10; round++)
        {
            foreach (var session in sessions)
            {
                Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(session));
            }
        }

        foreach (var session in sessions)
        {
            var holders = cluster.Holders(session);
            Assert.Equal([AffinityCluster.FirstChoice(session)], holders);
            Assert.Equal(10, AffinityCluster.Count(cluster.Mocks[holders[0]], session));
        }
    }

    [Fact]
    public async Task ThousandKeys_OverThreeDestinations_BusiestWithinAThirdOfQuietest()
    {
        await using var cluster = await AffinityCluster.StartAsync();

        await Parallel.ForAsync(0, 1000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync($"spread-{i}")));

        var counts = cluster.Mocks.Select(m => m!.Ledger.Snapshot().Count).ToArray();
        Assert.Equal(1000, counts.Sum());
        Assert.True(counts.Max() <= 1.3 * counts.Min(), $"per destination: {string.Join(", ", counts)}");
    }

    [Fact]
    public async Task SameSessionIdFromTwoTenants_EachTenantHasItsOwnDestination_ByItsScopedKey()
    {
        await using var cluster = await AffinityCluster.StartAsync();
        (string Header, string Credential)[] tenants = [("Bearer tenant-one-key", "Bearer tenant-one-key"), ("bearer  tenant-two-key", "Bearer tenant-two-key")];
        var differ = 0;

        for (var i = 0; i < 12; i++)
        {
            var session = $"shared-id-{i}";
            var expected = tenants.Select(t => AffinityCluster.FirstChoice(session, t.Credential)).ToArray();
            foreach (var mock in cluster.Mocks)
            {
                mock!.Ledger.Clear();
            }

            foreach (var (header, _) in tenants)
            {
                Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(session, header));
                Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(session, header));
            }

            // Each tenant's two requests went to its own scoped key's choice; where the choices differ the
            // session id alone did not decide.
            for (var d = 0; d < 3; d++)
            {
                Assert.Equal(expected.Count(e => e == d) * 2, AffinityCluster.Count(cluster.Mocks[d], session));
            }

            differ += expected[0] != expected[1] ? 1 : 0;
        }

        Assert.True(differ > 0, "no session id was placed differently for the two tenants");
    }

    [Fact]
    public async Task ChosenDestinationStops_SessionMovesOnce_AndStaysAfterItComesBack()
    {
        // Without passive health, so that the restarted destination is available at once (with it, after its
        // reactivation period: FailoverTests).
        await using var cluster = await AffinityCluster.StartAsync(s => s["ReverseProxy:Clusters:llm:HealthCheck:Passive:Enabled"] = "false");
        const string session = "failover-conversation";
        Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(session));
        var first = Assert.Single(cluster.Holders(session));
        var port = cluster.Mocks[first]!.BaseAddress.Port;

        await cluster.Mocks[first]!.DisposeAsync();
        cluster.Mocks[first] = null;

        // The request that finds its server gone is answered by the session's next choice (the forwarder could
        // not connect, so it was sent there instead), and the session moves; every later one goes there too.
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(session));
        }

        var moved = Assert.Single(cluster.Holders(session));
        Assert.NotEqual(first, moved);
        Assert.Equal(AffinityCluster.FirstChoice(session, among: new[] { 0, 1, 2 }.Where(d => d != first)), moved);
        Assert.Equal(6, AffinityCluster.Count(cluster.Mocks[moved], session));

        // The first destination comes back where it was: the session stays, and a session whose first
        // choice it is reaches it (so it is back, and staying away is the session's memory).
        cluster.Mocks[first] = await MockLlmServer.StartAsync(AffinityCluster.Quick, port);
        var other = Enumerable.Range(0, 1000).Select(i => $"home-{i}").First(s => AffinityCluster.FirstChoice(s) == first);
        Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(other));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(session));
        }

        Assert.Equal([first], cluster.Holders(other));
        Assert.Equal(0, AffinityCluster.Count(cluster.Mocks[first], session));
        Assert.Equal(11, AffinityCluster.Count(cluster.Mocks[moved], session));
    }

    [Fact]
    public async Task RequestsWithoutKey_OrOnRoutesWithoutAffinity_UseTheClustersOwnPolicy()
    {
        await using var cluster = await AffinityCluster.StartAsync(settings =>
        {
            settings["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "RoundRobin";
            settings["ReverseProxy:Routes:plain:ClusterId"] = "llm";
            settings["ReverseProxy:Routes:plain:Match:Path"] = "/plain/{**rest}";
            settings["ReverseProxy:Routes:plain:Metadata:SessionStreams"] = "true";
            settings["ReverseProxy:Routes:plain:Transforms:0:PathRemovePrefix"] = "/plain";
        });

        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(HttpStatusCode.OK, await cluster.SendAsync(sessionId: null));
            using var request = Infrastructure.StreamReading.ChatRequest("/plain/v1/chat/completions", "hello", "plain-session", stream: false);
            using var response = await cluster.Client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // Round robin, not affinity: both the keyless requests and the one session of the route without
        // affinity are spread over every destination.
        Assert.All(cluster.Mocks, m => Assert.Equal(2, m!.Ledger.Snapshot().Count(e => e.SessionId is null)));
        Assert.All(cluster.Mocks, m => Assert.Equal(2, m!.Ledger.Snapshot().Count(e => e.SessionId == "plain-session")));
    }
}
