using System.Globalization;
using Gateway.Tests.Hosting;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using MockLlm;

namespace Gateway.Tests.Limits;

/// <summary>
/// Callers without a credential. Behind an ingress or a load balancer they all arrive from one address,
/// so keyed by the connection's address they would be one tenant: the shipped limits must not refuse a
/// drop-in deployment's ordinary anonymous load. Per-address limits are opt-in, and then follow the
/// forwarded client address only from a configured trusted proxy.
/// </summary>
public sealed class AnonymousLimitTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private static string NewRoute() => "anon" + Guid.NewGuid().ToString("N")[..8];

    private static HttpRequestMessage Anonymous(string sessionId, string? forwardedFor = null, int maxTokens = 1000)
    {
        var headers = new Dictionary<string, string>(Slow);
        if (forwardedFor is not null)
        {
            headers["X-Forwarded-For"] = forwardedFor;
        }

        return StreamReading.ChatRequest("/v1/chat/completions", "x", sessionId, maxTokens: maxTokens, headers: headers);
    }

    [Fact]
    public async Task ShippedSettings_ManyAnonymousStreamsThroughOneAddress_AllServed()
    {
        // 150 streams open at once from one address, through the shipped appsettings.json (per-tenant
        // policy on its route): above the burst (120) and the concurrency (64) one tenant gets, which is
        // what every anonymous caller behind a load balancer would share if each address were a tenant.
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 20 });
        await using var gateway = await GatewayHost.StartAsync(new Dictionary<string, string?>(), builder =>
        {
            builder.Configuration.AddJsonFile(ConfigurationTests.RepoFile("gateway", "appsettings.json"), optional: false);
            builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["ReverseProxy:Clusters:llm:Destinations:primary:Address"] = mock.BaseAddress.ToString(),
            });
        });
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var responses = await Task.WhenAll(Enumerable.Range(0, 150).Select(i => StreamReading.SendAsync(client, Anonymous($"anon-{i}"))));
        try
        {
            Assert.All(responses, r => Assert.Equal(200, (int)r.StatusCode));
            Assert.Equal(150, mock.Ledger.Snapshot().Count(e => e.EndedAt is null));
        }
        finally
        {
            foreach (var response in responses)
            {
                response.Dispose();
            }
        }
    }

    [Fact]
    public async Task PerAddress_BehindATrustedProxy_EachForwardedClientHasItsOwnBucket()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: s =>
        {
            PerAddress(route, tokens: 2)(s);
            s["Gateway:ForwardedHeaders:KnownProxies:0"] = "127.0.0.1";
        }, routeId: route);

        Assert.Equal(200, await StatusAsync(stack, Anonymous("a1", "203.0.113.7", maxTokens: 1)));
        Assert.Equal(200, await StatusAsync(stack, Anonymous("a2", "198.51.100.1, 203.0.113.7", maxTokens: 1)));
        Assert.Equal(429, await StatusAsync(stack, Anonymous("a3", "203.0.113.7", maxTokens: 1)));
        Assert.Equal(200, await StatusAsync(stack, Anonymous("b1", "203.0.113.8", maxTokens: 1)));
    }

    [Fact]
    public async Task PerAddress_NoTrustedProxy_ForwardedForIgnored_ACallerCannotNameItselfAFreshAddress()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: PerAddress(route, tokens: 2), routeId: route);

        Assert.Equal(200, await StatusAsync(stack, Anonymous("a1", "203.0.113.7", maxTokens: 1)));
        Assert.Equal(200, await StatusAsync(stack, Anonymous("a2", "203.0.113.8", maxTokens: 1)));
        Assert.Equal(429, await StatusAsync(stack, Anonymous("a3", "203.0.113.9", maxTokens: 1)));
    }

    private static Action<Dictionary<string, string?>> PerAddress(string route, int tokens) => s =>
    {
        s[$"ReverseProxy:Routes:{route}:RateLimiterPolicy"] = "per-tenant";
        s["Gateway:RateLimits:Anonymous"] = "PerAddress";
        s["Gateway:RateLimits:TokenLimit"] = tokens.ToString(CultureInfo.InvariantCulture);
        s["Gateway:RateLimits:TokensPerPeriod"] = "1";
        s["Gateway:RateLimits:ReplenishmentPeriod"] = "01:00:00";
    };

    private static async Task<int> StatusAsync(Stack stack, HttpRequestMessage request) =>
        (await StreamReading.SendAndReadAsync(stack.Client, request)).StatusCode;
}
