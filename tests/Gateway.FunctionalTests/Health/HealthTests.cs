using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Health;

public sealed class HealthTests
{
    [Theory]
    [InlineData("/healthz", "ok")]
    [InlineData("/readyz", "ready")]
    public async Task Probe_AnsweredByGateway_NotProxied(string path, string body)
    {
        await using var stack = await Stack.StartAsync();
        using var response = await stack.Client.GetAsync(path);

        Assert.Equal(200, (int)response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsStringAsync());
        Assert.Empty(stack.Ledger.Snapshot());
    }
}
