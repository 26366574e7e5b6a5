namespace Gateway.Tests.RealServer;

/// <summary>One llama-server for every test in the <see cref="LlamaServerCollection"/>: started once
/// (loading the model costs seconds), killed after the last. The collection's tests run one at a
/// time, so each reads the server's counters and log as its own.</summary>
public sealed class LlamaServerFixture : IAsyncLifetime
{
    internal LlamaServer Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await LlamaServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (Server is not null)
        {
            await Server.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class LlamaServerCollection : ICollectionFixture<LlamaServerFixture>
{
    public const string Name = "llama-server";
}
