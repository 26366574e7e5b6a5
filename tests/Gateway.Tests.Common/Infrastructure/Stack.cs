using MockLlm;

namespace Gateway.Tests.Infrastructure;

/// <summary>A mock model server and a gateway in front of it, both on loopback ports the OS picked.</summary>
internal sealed class Stack : IAsyncDisposable
{
    private Stack(MockLlmServer mock, GatewayHost gateway)
    {
        Mock = mock;
        Gateway = gateway;
        Client = StreamReading.NewClient(gateway.BaseAddress);
    }

    public MockLlmServer Mock { get; }
    public GatewayHost Gateway { get; }

    /// <summary>A client of the gateway.</summary>
    public HttpClient Client { get; }

    public Ledger Ledger => Mock.Ledger;

    public static async Task<Stack> StartAsync(MockLlmOptions? mockOptions = null, Action<Dictionary<string, string?>>? configure = null,
        string routeId = "llm", Action<Microsoft.AspNetCore.Builder.WebApplicationBuilder>? builder = null)
    {
        var mock = await MockLlmServer.StartAsync(mockOptions ?? new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 20 });
        var gateway = await GatewayHost.StartAsync(mock.BaseAddress, configure, builder, routeId);
        return new Stack(mock, gateway);
    }

    /// <summary>Waits until the ledger has an entry for <paramref name="sessionId"/> matching <paramref name="predicate"/>.</summary>
    public Task<LedgerEntry> WaitForEntryAsync(string? sessionId, Func<LedgerEntry, bool> predicate, int index = 0) =>
        Wait.ForEntryAsync(Ledger, sessionId, predicate, index);

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Gateway.DisposeAsync();
        await Mock.DisposeAsync();
    }
}
