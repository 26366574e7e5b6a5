using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Limits;

/// <summary>Per-tenant limits through YARP's route RateLimiterPolicy, on the real wire.</summary>
public sealed class RateLimitTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private static Action<Dictionary<string, string?>> Limits(string route, int tokens, int concurrent) => s =>
    {
        s[$"ReverseProxy:Routes:{route}:RateLimiterPolicy"] = "per-tenant";
        s["Gateway:RateLimits:TokenLimit"] = tokens.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["Gateway:RateLimits:TokensPerPeriod"] = "1";
        s["Gateway:RateLimits:ReplenishmentPeriod"] = "01:00:00";
        s["Gateway:RateLimits:MaxConcurrentStreams"] = concurrent.ToString(System.Globalization.CultureInfo.InvariantCulture);
    };

    private static string NewRoute() => "rl" + Guid.NewGuid().ToString("N")[..8];

    [Fact]
    public async Task RequestRateExceeded_429WithRetryAfterAndOpenAiError_Counted_OtherTenantUnaffected()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: Limits(route, tokens: 2, concurrent: 100), routeId: route);
        for (var i = 0; i < 2; i++)
        {
            var ok = await StreamReading.SendAndReadAsync(stack.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "x", $"r{i}", maxTokens: 1, authorization: "Bearer alice"));
            Assert.Equal(200, ok.StatusCode);
        }

        using var rejected = await stack.Client.SendAsync(
            StreamReading.ChatRequest("/v1/chat/completions", "x", "r3", maxTokens: 1, authorization: "Bearer alice"));
        var other = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "x", "r4", maxTokens: 1, authorization: "Bearer bob"));

        Assert.Equal(429, (int)rejected.StatusCode);
        Assert.True(rejected.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        var error = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement.GetProperty("error");
        Assert.Equal("rate_limit_exceeded", error.GetProperty("code").GetString());
        Assert.Equal(200, other.StatusCode);
        Assert.Equal(3, stack.Ledger.Snapshot().Count);

        var samples = await PromText.ParseAsync(stack.Client);
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_rate_limit_rejections_total", ("route", route), ("limit", "rate")));
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_streams_ended_total", ("route", route), ("outcome", "rate_limited")));
    }

    [Fact]
    public async Task EmptiedBucket_RefillsAfterItsPeriod_WithoutATimerPerTenant()
    {
        // Buckets are replenished by the partitioned limiter's heartbeat (no timer per tenant): an
        // emptied bucket must still refill. Until it does, every try is a 429 that reaches no model.
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: s =>
        {
            Limits(route, tokens: 1, concurrent: 100)(s);
            // Long enough that the next try lands before the refill even on a loaded machine, short enough to wait for.
            s["Gateway:RateLimits:ReplenishmentPeriod"] = "00:00:01";
        }, routeId: route);
        // Another tenant's request first, so compiling the path on a fresh host is not timed in carol's second.
        var warm = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "x", "warm-up", maxTokens: 1, authorization: "Bearer warm"));
        Assert.Equal(200, warm.StatusCode);
        var first = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "x", "refill-0", maxTokens: 1, authorization: "Bearer carol"));
        Assert.Equal(200, first.StatusCode);

        var rejections = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        int status;
        do
        {
            using var next = await stack.Client.SendAsync(
                StreamReading.ChatRequest("/v1/chat/completions", "x", "refill-1", maxTokens: 1, authorization: "Bearer carol"));
            status = (int)next.StatusCode;
            if (status == 429)
            {
                rejections++;
                await Task.Yield();
            }
        }
        while (status == 429 && DateTime.UtcNow < deadline);

        Assert.Equal(200, status);
        Assert.True(rejections > 0, "the bucket of one token was not empty after the first request");
        Assert.Equal(3, stack.Ledger.Snapshot().Count); // warm-up, carol's first, carol's after the refill
    }

    [Fact]
    public async Task ConcurrencyLimitOne_NewKeyRejected_SameKeySupersedes_SlotFreedAtOnce()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: Limits(route, tokens: 100, concurrent: 1), routeId: route);
        using var first = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "long", "chat", maxTokens: 200, authorization: "Bearer alice", headers: Slow));
        await stack.WaitForEntryAsync("chat", e => e.TokensSent >= 2);

        // A second conversation while one streams: over the limit.
        using var secondConversation = await stack.Client.SendAsync(
            StreamReading.ChatRequest("/v1/chat/completions", "other", "other-chat", maxTokens: 2, authorization: "Bearer alice"));
        Assert.Equal(429, (int)secondConversation.StatusCode);
        Assert.Equal("concurrency_limit_exceeded",
            JsonDocument.Parse(await secondConversation.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());

        // Typing again in the same conversation: supersedes, needing no second slot.
        using var again = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "again", "chat", maxTokens: 200, authorization: "Bearer alice", headers: Slow));
        Assert.Equal(200, (int)again.StatusCode);
        var firstTranscript = await StreamReading.ReadToEndAsync(first);
        Assert.Contains("request_superseded", firstTranscript.DataEvents[^1]);

        // Stopping the stream frees the slot at once: a new conversation is admitted.
        using var stop = new HttpRequestMessage(HttpMethod.Post, "/v1/sessions/chat/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse("Bearer alice");
        Assert.Equal(200, (int)(await stack.Client.SendAsync(stop)).StatusCode);
        await StreamReading.ReadToEndAsync(again);
        var third = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "next", "third-chat", maxTokens: 2, authorization: "Bearer alice"));
        Assert.Equal(200, third.StatusCode);

        var samples = await PromText.ParseAsync(stack.Client);
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_rate_limit_rejections_total", ("route", route), ("limit", "concurrency")));
    }
}
