using System.Diagnostics;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Telemetry;

/// <summary>After real cancellations through real Kestrel, /metrics tells what the mock's ledger says happened.</summary>
public sealed class MetricsScrapeTests
{
    private static readonly Dictionary<string, string> LongAnswer = new()
    {
        ["X-Mock-Tokens-Per-Second"] = "20",
        ["X-Mock-Completion-Tokens"] = "1000", // the cap (max_tokens) is what ends it: the truth is cap − sent
    };

    private static string NewRoute() => "r" + Guid.NewGuid().ToString("N")[..10];

    private static Task<IReadOnlyList<PromSample>> ScrapeAsync(Stack stack) => PromText.ScrapeAsync(stack);

    [Fact]
    public async Task Supersede_Metrics_TokensSavedMatchLedger()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: 2);
        using var old = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "m1", maxTokens: 60, headers: LongAnswer));
        await stack.WaitForEntryAsync("m1", e => e.TokensSent >= 5);
        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "short", "m1", maxTokens: 3));
        await StreamReading.ReadToEndAsync(old);
        await ended.WaitAsync();

        var truth = await stack.WaitForEntryAsync("m1", e => e.EndedAt is not null, index: 0);
        var samples = await ScrapeAsync(stack);
        var saved = PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_sum", ("route", route), ("reason", "superseded"));
        var spent = PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("reason", "superseded"));

        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_streams_ended_total", ("route", route), ("outcome", "superseded")));
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_streams_ended_total", ("route", route), ("outcome", "completed")));
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_cancellation_latency_seconds_count", ("route", route), ("reason", "superseded")));
        Assert.True(saved > 0);
        // The ledger is the truth: tokens the mock planned but never generated. The gateway counts what
        // reached it, never more than the mock wrote; what was still in flight at the cancel (more on a
        // loaded machine) it cannot see, so the cap estimate is the cap minus what it counted.
        Assert.InRange(spent, 1, truth.TokensSent);
        Assert.Equal(truth.TokensPlanned - spent, saved);
        Assert.Equal(spent + 3, PromText.Sum(samples, "llm_gateway_tokens_streamed_total", ("route", route)));
        Assert.Equal(0, PromText.Sum(samples, "llm_gateway_streams_active", ("route", route)));
    }

    [Fact]
    public async Task ClientDrop_Metrics_TokensSavedMatchLedger()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route);
        var client = StreamReading.NewClient(stack.Gateway.BaseAddress);
        var response = await StreamReading.SendAsync(client,
            StreamReading.ChatRequest("/api/chat", "long", "m2", maxTokens: 60, headers: LongAnswer));
        await stack.WaitForEntryAsync("m2", e => e.TokensSent >= 5);
        response.Dispose();
        client.Dispose();
        await ended.WaitAsync();

        var truth = await stack.WaitForEntryAsync("m2", e => e.EndedAt is not null);
        var samples = await ScrapeAsync(stack);
        var saved = PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_sum", ("route", route), ("reason", "client_disconnected"));
        var spent = PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("reason", "client_disconnected"));

        Assert.True(truth.Cancelled);
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_streams_ended_total", ("route", route), ("outcome", "client_disconnected")));
        Assert.True(saved > 0);
        Assert.InRange(spent, 1, truth.TokensSent);
        Assert.Equal(truth.TokensPlanned - spent, saved);
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_cancellation_latency_seconds_count", ("route", route), ("reason", "client_disconnected")));
    }

    [Fact]
    public async Task CompletedStreamWithUsage_Metrics_UsageIsTheCount()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route);
        var request = StreamReading.ChatRequest("/v1/chat/completions", "count me", "m3", maxTokens: 7, model: route);
        var body = await request.Content!.ReadAsStringAsync();
        request.Content = new StringContent(body.TrimEnd('}') + ",\"stream_options\":{\"include_usage\":true}}", System.Text.Encoding.UTF8, "application/json");
        await StreamReading.SendAndReadAsync(stack.Client, request);
        await ended.WaitAsync();

        var samples = await ScrapeAsync(stack);
        Assert.Equal(7, PromText.Sum(samples, "llm_gateway_tokens_streamed_total", ("route", route)));
        Assert.Equal(7, PromText.Sum(samples, "gen_ai_client_token_usage_sum", ("gen_ai_token_type", "output"), ("gen_ai_request_model", route)));
        Assert.Equal(1, PromText.Sum(samples, "gen_ai_client_operation_time_to_first_chunk_seconds_count", ("gen_ai_request_model", route)));
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_streams_ended_total", ("route", route), ("outcome", "completed")));
    }

    [Trait(TestCategory.Name, TestCategory.Slow)]
    [Fact]
    public async Task Scrape_PassesPromtoolCheckMetrics()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: 2);
        using var old = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "p1", maxTokens: 60, headers: LongAnswer));
        await stack.WaitForEntryAsync("p1", e => e.TokensSent >= 2);
        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "short", "p1", maxTokens: 3));
        await StreamReading.ReadToEndAsync(old);
        await ended.WaitAsync();
        var text = await stack.Client.GetStringAsync("/metrics");

        var promtool = new ProcessStartInfo("promtool", "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(promtool) ?? throw new InvalidOperationException("promtool did not start (Debian package prometheus; tests/run installs it)");
        await process.StandardInput.WriteAsync(text);
        process.StandardInput.Close();
        var output = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(Wait.Timeout);

        Assert.True(process.ExitCode == 0, $"promtool check metrics failed:\n{output}");
        Assert.Contains("llm_gateway_cancellation_tokens_saved_bucket", text);
    }
}
