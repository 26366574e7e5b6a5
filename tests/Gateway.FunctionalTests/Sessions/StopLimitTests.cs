using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions;

/// <summary>The explicit stop spends its tenant's request bucket, the one its streams spend: a storm of
/// stops is refused with 429 once the bucket is empty, and costs no other tenant anything.</summary>
public sealed class StopLimitTests
{
    private static HttpRequestMessage Stop(string sessionId, string authorization)
    {
        var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        return stop;
    }

    [Fact]
    public async Task StopStorm_PastTheTenantsBucket_429WithRetryAfter_SameBucketAsStreams_OtherTenantUnaffected()
    {
        await using var stack = await Stack.StartAsync(configure: s =>
        {
            s["Gateway:RateLimits:TokenLimit"] = "10";
            s["Gateway:RateLimits:TokensPerPeriod"] = "1";
            s["Gateway:RateLimits:ReplenishmentPeriod"] = "01:00:00";
            s["ReverseProxy:Routes:llm:RateLimiterPolicy"] = "per-tenant";
        });

        var statuses = new List<int>();
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 30; i++)
        {
            var response = await stack.Client.SendAsync(Stop($"missing-{i}", "Bearer mallory"));
            statuses.Add((int)response.StatusCode);
            if ((int)response.StatusCode == 429)
            {
                refused ??= response;
            }
        }

        Assert.Equal(10, statuses.Count(s => s == 404));
        Assert.Equal(20, statuses.Count(s => s == 429));
        Assert.True(refused!.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        Assert.Equal("rate_limit_exceeded",
            JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetProperty("code").GetString());

        // The stops spent the bucket the tenant's streams use; another tenant's bucket is whole.
        using var stream = await stack.Client.SendAsync(StreamReading.ChatRequest("/v1/chat/completions", "x", "s", maxTokens: 1, authorization: "Bearer mallory"));
        Assert.Equal(429, (int)stream.StatusCode);
        using var other = await stack.Client.SendAsync(Stop("missing", "Bearer alice"));
        Assert.Equal(404, (int)other.StatusCode);
        Assert.Empty(stack.Ledger.Snapshot());
    }
}
