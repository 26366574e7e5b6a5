using MockLlm;

namespace Gateway.Tests.MockLlm;

/// <summary>One mock for a test class (xunit runs a class's tests one after another); each test finds its
/// ledger entry by its own session id.</summary>
public sealed class MockLlmFixture : IAsyncLifetime
{
    public MockLlmServer Server { get; private set; } = null!;

    /// <summary>Fast, so a test waits on the stream rather than on the schedule.</summary>
    public async Task InitializeAsync() =>
        Server = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 1000, TimeToFirstTokenMs = 0, DefaultCompletionTokens = 12 });

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
