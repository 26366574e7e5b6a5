using Gateway.Savings;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Savings;

/// <summary>
/// Error answers are not answers: a caller with a bad key (401s) or an overloaded upstream (429s, 503s)
/// must not teach the savings estimator that answers are 0 tokens long. Each ends as
/// <c>upstream_error</c> with its status class.
/// </summary>
public sealed class UpstreamErrorLearningTests
{
    [Theory]
    [InlineData(401, "4xx", "application/json", "{\"error\":{\"message\":\"no\",\"type\":\"invalid_request_error\",\"code\":null}}")]
    [InlineData(429, "4xx", "text/plain", "Too Many Requests")]
    [InlineData(503, "5xx", "text/html", "<html><body>upstream overloaded</body></html>")]
    [InlineData(400, "4xx", "application/json", "{\"detail\":\"bad\"}")]
    public async Task ThirtyUpstreamErrors_ThenACancellation_EstimateIsNotLearnedFromTheErrors(int status, string statusClass, string contentType, string body)
    {
        var route = $"errors-{status}-{Guid.NewGuid():N}";
        using var metrics = new MetricRecorder(route);
        var error = System.Text.Encoding.UTF8.GetBytes(body);
        await using var upstream = await RawUpstream.StartAsync(new RawResponse(contentType, [error], status));
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseAddress, routeId: route);
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        for (var i = 0; i < 30; i++)
        {
            var transcript = await StreamReading.SendAndReadAsync(client,
                StreamReading.ChatRequest("/v1/chat/completions", "hello", $"e{i}", maxTokens: 300, model: "err-model"));
            Assert.Equal(status, transcript.StatusCode); // passed on unchanged
        }

        await metrics.WaitForAsync("llm_gateway.streams.ended", m => metrics.All("llm_gateway.streams.ended").Count == 30);
        Assert.All(metrics.All("llm_gateway.streams.ended"), m =>
        {
            Assert.Equal("upstream_error", m["outcome"]);
            Assert.Equal(statusClass, m["status_class"]);
        });

        // The estimator has learned nothing from them: a 300-token answer cut at 10 is estimated from the prior.
        var estimate = gateway.Services.GetRequiredService<SavingsEstimator>().Estimate("err-model", 10, 300);
        Assert.Equal(Estimator.Prior, estimate.Estimator);
        Assert.Equal(256 - 10, estimate.Tokens);
    }
}
