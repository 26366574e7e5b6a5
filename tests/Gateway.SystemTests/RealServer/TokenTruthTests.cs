using System.Globalization;
using Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Tests.RealServer;

/// <summary>
/// The gateway's token figures against a real model server's own count (<c>llamacpp:tokens_predicted_total</c>).
/// The tiny model never ends an answer by itself, so an answer's true length is its max_tokens, and
/// the truth of a cut answer's savings is max_tokens minus what the server generated for it.
/// </summary>
[Collection(LlamaServerCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class TokenTruthTests(LlamaServerFixture fixture, ITestOutputHelper output)
{
    private LlamaServer Server => fixture.Server;

    private static string NewRoute() => "rs" + Guid.NewGuid().ToString("N")[..10];

    [Theory]
    [MemberData(nameof(LlamaApi.All), MemberType = typeof(LlamaApi))]
    public async Task CompletedAnswers_TokensStreamed_EqualServerCount(string apiName)
    {
        const int answers = 3;
        const int length = 48;
        var api = LlamaApi.Named(apiName);
        var route = NewRoute();
        await using var gateway = await GatewayHost.StartAsync(Server.BaseAddress, routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: answers);
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var mark = Server.LineCount;
        var before = await Server.TokensPredictedAsync();

        for (var i = 0; i < answers; i++)
        {
            var transcript = await StreamReading.SendAndReadAsync(client, api.Request($"question {i}", $"done-{i}", length));
            Assert.True(api.Completed(transcript), string.Join('\n', transcript.Lines));
            Assert.Equal(length, api.CompletionTokens(transcript));
            Assert.Equal(length, api.ContentEvents(transcript)); // one token per event, as the gateway counts a cut stream
        }

        await ended.WaitAsync();
        await Server.WaitForReleasesAsync(answers, mark);
        var serverCount = await Server.TokensPredictedAsync() - before;
        var streamed = PromText.Sum(await PromText.ParseAsync(client), "llm_gateway_tokens_streamed_total", ("route", route));

        Assert.Equal(answers * length, serverCount);
        Assert.Equal(serverCount, streamed);
    }

    /// <summary>
    /// Cold start, then accuracy: one answer of a model nobody has seen complete is cut (the prior
    /// estimates it); then a few answers complete and teach the estimator, and answers cut at points
    /// from early to late (each way of cutting) are compared with the server's truth, in total.
    /// </summary>
    [Theory]
    [MemberData(nameof(LlamaApi.All), MemberType = typeof(LlamaApi))]
    public async Task CutAnswersAfterWarmUp_EstimatedTokensSaved_WithinTenPercentOfServerTruth(string apiName)
    {
        // Above the estimator's prior (256), so the cold start shows the prior's error, not the cap's.
        // The latest cut leaves 780 tokens (over a second at the 1.5 ms a token a CI machine measured) for the cut to reach
        // the server before the answer ends: with 180 left, a supersede once arrived after the answer had completed.
        const int length = 1000;
        const int warmUp = 4;
        const int prior = 256;
        (int ReadBeforeCut, CutKind Kind)[] cuts =
            [(10, CutKind.Supersede), (40, CutKind.ClientDrop), (80, CutKind.Stop), (120, CutKind.Supersede), (160, CutKind.ClientDrop), (220, CutKind.Stop)];
        var api = LlamaApi.Named(apiName);
        var route = NewRoute();
        await using var gateway = await GatewayHost.StartAsync(Server.BaseAddress, settings =>
        {
            settings["Gateway:Savings:MinSamples"] = warmUp.ToString(CultureInfo.InvariantCulture);
            settings["Gateway:Savings:PriorMeanTokens"] = prior.ToString(CultureInfo.InvariantCulture);
        }, routeId: route);
        using var saved = new MetricSignal("llm_gateway.cancellation.tokens_saved", route, count: 1 + cuts.Length);
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var (_, _, coldGenerated) = await Cuts.CutAndCountAsync(Server, gateway, api, CutKind.ClientDrop, "cold", length, 20, model: "tiny-cold");
        var coldTruth = length - coldGenerated;

        var warmUpMark = Server.LineCount;
        for (var i = 0; i < warmUp; i++)
        {
            var transcript = await StreamReading.SendAndReadAsync(client, api.Request($"warm-up {i}", $"warm-{i}", length));
            Assert.Equal(length, api.CompletionTokens(transcript));
        }

        // A slot is released just after its answer's last event: the first cut must not count the last warm-up's tokens.
        await Server.WaitForReleasesAsync(warmUp, warmUpMark);

        long truth = 0;
        long generatedPastGateway = 0;
        foreach (var (readBeforeCut, kind) in cuts)
        {
            var (_, _, generated) = await Cuts.CutAndCountAsync(Server, gateway, api, kind, $"cut-{readBeforeCut}", length, readBeforeCut);
            truth += length - generated;
            generatedPastGateway += generated;
        }

        await saved.WaitAsync();
        var samples = await PromText.ParseAsync(client);
        var estimated = PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_sum", ("route", route), ("model", "tiny"));
        var streamed = PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("model", "tiny"));
        var estimators = samples.Where(s => s.Name == "llm_gateway_cancellation_tokens_saved_count" && s.Labels.GetValueOrDefault("route") == route
                && s.Labels.GetValueOrDefault("model") == "tiny")
            .GroupBy(s => s.Labels["estimator"]).ToDictionary(g => g.Key, g => g.Sum(s => s.Value));
        var coldEstimate = PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_sum", ("route", route), ("model", "tiny-cold"), ("estimator", "prior"));
        var coldStreamed = PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("model", "tiny-cold"));
        var error = (estimated - truth) / truth;
        var coldError = (coldEstimate - coldTruth) / coldTruth;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{api}: {cuts.Length} cuts of {length}-token answers after {warmUp} completed: estimated {estimated} tokens saved, server truth {truth} (error {error:+0.0%;-0.0%}); " +
            $"the server generated {generatedPastGateway - streamed} tokens past what the gateway passed on ({streamed}); " +
            $"estimators: {string.Join(", ", estimators.Select(e => $"{e.Key} {e.Value}"))}"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{api}: cold start (prior {prior}, no completed answer of the model): cut after {coldStreamed} tokens, estimated {coldEstimate}, server truth {coldTruth} (error {coldError:+0.0%;-0.0%})"));

        Assert.Equal(0, estimators.GetValueOrDefault("prior")); // the warm-up taught the estimator: no cut after it used the prior
        Assert.Equal(prior - coldStreamed, coldEstimate);
        Assert.InRange(error, -0.10, 0.10);
    }
}
