using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.ML.Tokenizers;

namespace Gateway.Tests.Telemetry;

public sealed class TokenizerAndTraceTests
{
    [Fact]
    public async Task TokenizerCounting_StreamWithoutUsage_CountsTheTextWithO200k()
    {
        var route = "tok" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(routeId: route, configure: s => s["Gateway:Tokens:Counting"] = "Tokenizer");
        using var ended = new MetricSignal("llm_gateway.streams.ended", route);
        var transcript = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "count these words", "tk", maxTokens: 25));
        await ended.WaitAsync();

        var text = new StringBuilder();
        foreach (var data in transcript.DataEvents.Where(d => d.StartsWith('{')))
        {
            foreach (var choice in JsonDocument.Parse(data).RootElement.GetProperty("choices").EnumerateArray())
            {
                if (choice.GetProperty("delta").TryGetProperty("content", out var content))
                {
                    text.Append(content.GetString());
                }
            }
        }

        var expected = TiktokenTokenizer.CreateForEncoding("o200k_base").CountTokens(text.ToString());
        var samples = await PromText.ParseAsync(stack.Client);
        Assert.NotEqual(25, expected); // the words are not one token each, so the test tells the modes apart
        Assert.Equal(expected, PromText.Sum(samples, "llm_gateway_tokens_streamed_total", ("route", route)));
    }

    [Fact]
    public async Task SessionStream_EmitsSpanWithOutcomeAndModel_NoSessionIdOrPrompt()
    {
        var route = "trace" + Guid.NewGuid().ToString("N")[..8];
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "LlmGateway",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = activity =>
            {
                if (Equals(activity.GetTagItem("llm_gateway.route"), route))
                {
                    lock (spans)
                    {
                        spans.Add(activity);
                    }
                }
            },
        };
        ActivitySource.AddActivityListener(listener);
        await using var stack = await Stack.StartAsync(routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route);

        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "secret prompt", "secret-session", maxTokens: 3));
        await ended.WaitAsync();

        Activity span;
        lock (spans)
        {
            span = Assert.Single(spans);
        }

        Assert.Equal("session_stream", span.OperationName);
        Assert.Equal("completed", span.GetTagItem("llm_gateway.outcome"));
        Assert.Equal("mock-1", span.GetTagItem("gen_ai.request.model"));
        Assert.DoesNotContain(span.TagObjects, t => t.Value is string v && (v.Contains("secret")));
    }
}
