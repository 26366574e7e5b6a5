using Gateway.Protocols;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Protocols;

/// <summary>A gateway in front of the mock on a route of its own, with the metrics of that route recorded.</summary>
internal sealed class ApiStack : IAsyncDisposable
{
    public static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private ApiStack(Stack stack, MetricRecorder metrics, string route)
    {
        Stack = stack;
        Metrics = metrics;
        Route = route;
    }

    public Stack Stack { get; }
    public MetricRecorder Metrics { get; }
    public string Route { get; }
    public HttpClient Client => Stack.Client;

    public static async Task<ApiStack> StartAsync(string scenario, ApiCase api, Action<Dictionary<string, string?>>? configure = null)
    {
        var route = $"{scenario}-{api.Name}-{Guid.NewGuid():N}";
        var metrics = new MetricRecorder(route);
        var stack = await Stack.StartAsync(configure: configure, routeId: route);
        return new ApiStack(stack, metrics, route);
    }

    /// <summary>The stream's end as the gateway recorded it: outcome, tokens streamed, and for a cancellation the estimate.</summary>
    public async Task<(Measured Ended, Measured Streamed, Measured? Saved)> EndedAsync(string outcome)
    {
        var ended = await Metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == outcome);
        var streamed = await Metrics.WaitForAsync("llm_gateway.tokens.streamed");
        var saved = outcome is "completed" or "upstream_error" ? null : await Metrics.WaitForAsync("llm_gateway.cancellation.tokens_saved");
        return (ended, streamed, saved);
    }

    public async ValueTask DisposeAsync()
    {
        await Stack.DisposeAsync();
        Metrics.Dispose();
    }

    public static EndNotice Notice(string reason) => reason switch
    {
        "superseded" => EndNotice.Superseded,
        "stopped" => EndNotice.Stopped,
        _ => EndNotice.UpstreamReset,
    };
}
