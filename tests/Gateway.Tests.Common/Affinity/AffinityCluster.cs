using System.Globalization;
using System.Net;
using Gateway.Affinity;
using Gateway.Sessions;
using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Affinity;

/// <summary>Three mock-llm destinations (<c>d0</c>, <c>d1</c>, <c>d2</c>) in cluster "llm", behind a gateway
/// whose route "llm" has session streams and, unless told otherwise, affinity. Each mock's ledger says
/// which requests reached it.</summary>
internal sealed class AffinityCluster : IAsyncDisposable
{
    public static readonly MockLlmOptions Quick = new() { TimeToFirstTokenMs = 0, TokensPerSecond = 10_000, DefaultCompletionTokens = 2 };

    private AffinityCluster(MockLlmServer?[] mocks, GatewayHost gateway)
    {
        Mocks = mocks;
        Gateway = gateway;
        Client = StreamReading.NewClient(gateway.BaseAddress);
    }

    /// <summary>By destination index; null while a test has it stopped.</summary>
    public MockLlmServer?[] Mocks { get; }

    public GatewayHost Gateway { get; }

    public HttpClient Client { get; }

    public static string DestinationId(int index) => "d" + index.ToString(CultureInfo.InvariantCulture);

    public static async Task<MockLlmServer[]> StartMocksAsync(int count = 3)
    {
        var mocks = new MockLlmServer[count];
        for (var i = 0; i < count; i++)
        {
            mocks[i] = await MockLlmServer.StartAsync(Quick);
        }

        return mocks;
    }

    /// <summary>Route "llm" (catch-all, session streams, affinity as given) to cluster "llm" over <paramref name="mocks"/>.</summary>
    public static Dictionary<string, string?> Settings(IReadOnlyList<MockLlmServer> mocks, string? affinity = "true")
    {
        var settings = new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:llm:ClusterId"] = "llm",
            ["ReverseProxy:Routes:llm:Match:Path"] = "{**catch-all}",
            ["ReverseProxy:Routes:llm:Metadata:SessionStreams"] = "true",
        };
        if (affinity is not null)
        {
            settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.Affinity"] = affinity;
        }

        for (var i = 0; i < mocks.Count; i++)
        {
            settings[$"ReverseProxy:Clusters:llm:Destinations:{DestinationId(i)}:Address"] = mocks[i].BaseAddress.ToString();
        }

        return settings;
    }

    public static async Task<AffinityCluster> StartAsync(Action<Dictionary<string, string?>>? configure = null, string? affinity = "true")
    {
        var mocks = await StartMocksAsync();
        var settings = Settings(mocks, affinity);
        configure?.Invoke(settings);
        var gateway = await GatewayHost.StartAsync(settings);
        return new AffinityCluster(mocks, gateway);
    }

    /// <summary>The destination the policy computes for <paramref name="sessionId"/> from <paramref name="credential"/>
    /// (its first choice of <paramref name="among"/>): what every replica picks while that destination is healthy.</summary>
    public static int FirstChoice(string sessionId, string? credential = null, IEnumerable<int>? among = null)
    {
        var scope = AffinityScope.Of("llm", SessionKey.TenantSessionOf(credential, sessionId));
        return (among ?? [0, 1, 2]).MaxBy(i => Rendezvous.Score(scope.Hash, DestinationId(i)));
    }

    /// <summary>Sends one short non-streaming chat request with <paramref name="sessionId"/> and returns its status.</summary>
    public static async Task<HttpStatusCode> SendAsync(HttpClient client, string? sessionId, string? authorization = null)
    {
        using var request = StreamReading.ChatRequest("/v1/chat/completions", "hello", sessionId, stream: false, authorization: authorization);
        using var response = await client.SendAsync(request);
        await response.Content.ReadAsByteArrayAsync();
        return response.StatusCode;
    }

    public Task<HttpStatusCode> SendAsync(string? sessionId, string? authorization = null) => SendAsync(Client, sessionId, authorization);

    /// <summary>Which mocks' ledgers hold requests of <paramref name="sessionId"/>, by index.</summary>
    public int[] Holders(string sessionId) => Holders(Mocks, sessionId);

    public static int[] Holders(IReadOnlyList<MockLlmServer?> mocks, string sessionId) =>
        [.. Enumerable.Range(0, mocks.Count).Where(i => mocks[i]?.Ledger.Snapshot().Any(e => e.SessionId == sessionId) == true)];

    public static int Count(MockLlmServer? mock, string sessionId) => mock?.Ledger.Snapshot().Count(e => e.SessionId == sessionId) ?? 0;

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
        foreach (var mock in Mocks)
        {
            if (mock is not null)
            {
                await mock.DisposeAsync();
            }
        }
    }
}
