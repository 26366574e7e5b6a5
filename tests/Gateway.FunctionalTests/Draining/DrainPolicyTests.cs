using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Draining;

/// <summary>A route with <c>SessionStreams.CancelPolicy: Drain</c> releases the client at once but
/// reads the upstream to its end, for providers that bill generated tokens anyway.</summary>
public sealed class DrainPolicyTests
{
    private static readonly Dictionary<string, string> Answer = new()
    {
        ["X-Mock-Tokens-Per-Second"] = "40",
        ["X-Mock-Completion-Tokens"] = "1000",
    };

    [Fact]
    public async Task Supersede_DrainRoute_ClientReleasedWithReason_UpstreamReadToEnd_ExactUsageRecorded()
    {
        var route = "drain" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(routeId: route,
            configure: s => s[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.CancelPolicy"] = "Drain");
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: 2);
        using var old = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "d1", maxTokens: 60, headers: Answer));
        await stack.WaitForEntryAsync("d1", e => e.TokensSent >= 3);

        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "short", "d1", maxTokens: 3));
        var oldTranscript = await StreamReading.ReadToEndAsync(old);
        // The client was released before the upstream finished: the drain still runs.
        var atRelease = stack.Ledger.Snapshot().First(e => e.SessionId == "d1");

        Assert.True(oldTranscript.EndedCleanly);
        Assert.Equal("request_superseded",
            JsonDocument.Parse(oldTranscript.DataEvents[^1]).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.True(atRelease.TokensSent < atRelease.TokensPlanned, "released before the upstream ended");

        var drained = await stack.WaitForEntryAsync("d1", e => e.EndedAt is not null, index: 0);
        Assert.True(drained.Completed, "the upstream was read to its end, not aborted");
        Assert.False(drained.Cancelled);
        await ended.WaitAsync();

        var samples = await PromText.ParseAsync(stack.Client);
        Assert.Equal(drained.TokensSent, PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("reason", "superseded")));
        Assert.Equal(0, PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_sum", ("route", route)));
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_count", ("route", route), ("estimator", "drained")));
    }

    [Fact]
    public async Task ClientDrop_DrainRoute_UpstreamReadToEnd()
    {
        var route = "drain" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(routeId: route,
            configure: s => s[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.CancelPolicy"] = "Drain");
        using var ended = new MetricSignal("llm_gateway.streams.ended", route);
        var client = StreamReading.NewClient(stack.Gateway.BaseAddress);
        var response = await StreamReading.SendAsync(client, StreamReading.ChatRequest("/api/chat", "long", "d2", maxTokens: 120, headers: Answer));
        await stack.WaitForEntryAsync("d2", e => e.TokensSent >= 3);
        response.Dispose();
        client.Dispose();

        var drained = await stack.WaitForEntryAsync("d2", e => e.EndedAt is not null);
        await ended.WaitAsync();

        Assert.True(drained.Completed);
        Assert.Equal(120, drained.TokensSent);
        var samples = await PromText.ParseAsync(stack.Client);
        Assert.True(120 == PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("reason", "client_disconnected")),
            string.Join("\n", samples.Where(x => x.Labels.TryGetValue("route", out var r) && r == route).Select(x => x.Name + " " + string.Join(",", x.Labels) + " " + x.Value)));
        Assert.Equal(120, PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("reason", "client_disconnected")));
    }

    [Fact]
    public async Task SupersedeBeforeFirstByte_DrainRoute_409AtOnce_WholeResponseDrained()
    {
        var route = "drain" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(routeId: route,
            configure: s => s[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.CancelPolicy"] = "Drain");
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: 2);
        var slowStart = new Dictionary<string, string>(Answer) { ["X-Mock-Ttft-Ms"] = "1500" };
        var oldTask = StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "d3", maxTokens: 20, headers: slowStart));
        await stack.WaitForEntryAsync("d3", _ => true);

        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "short", "d3", maxTokens: 3));
        var old = await oldTask;

        Assert.Equal(409, old.StatusCode);
        Assert.Equal(0, stack.Ledger.Snapshot().First(e => e.SessionId == "d3").TokensSent); // released before the first token
        var drained = await stack.WaitForEntryAsync("d3", e => e.EndedAt is not null, index: 0);
        Assert.True(drained.Completed);
        await ended.WaitAsync();
        var samples = await PromText.ParseAsync(stack.Client);
        Assert.Equal(20, PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("reason", "superseded")));
    }

    [Fact]
    public async Task BadCancelPolicy_StartFails_MessageNamesTheKey()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.CancelPolicy"] = "Sometimes";

        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var app = GatewayHost.Build(settings);
            await app.StartAsync();
        });
        Assert.Contains("SessionStreams.CancelPolicy", error.ToString());
    }
}
