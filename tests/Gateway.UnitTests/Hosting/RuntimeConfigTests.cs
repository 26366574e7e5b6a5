using System.Text.Json;

namespace Gateway.Tests.Hosting;

/// <summary>The runtime settings the gateway ships in Gateway.runtimeconfig.json (build and publish output alike).</summary>
public sealed class RuntimeConfigTests
{
    [Fact]
    public void ShippedRuntimeConfig_ThreadPoolWorkersBlockInsteadOfSpinning()
    {
        // README "Performance": spinning for work was a quarter of the proxy's CPU under streaming load.
        var path = Path.Combine(AppContext.BaseDirectory, "Gateway.runtimeconfig.json");
        using var config = JsonDocument.Parse(File.ReadAllText(path));
        var properties = config.RootElement.GetProperty("runtimeOptions").GetProperty("configProperties");

        Assert.True(properties.TryGetProperty("System.Threading.ThreadPool.UnfairSemaphoreSpinLimit", out var spin),
            "Gateway.runtimeconfig.json does not set the thread pool spin limit (ThreadPoolSpinCount in gateway/Gateway.csproj)");
        Assert.Equal(0, spin.GetInt32());
    }
}
