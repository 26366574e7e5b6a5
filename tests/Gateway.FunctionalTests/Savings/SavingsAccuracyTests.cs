using System.Globalization;
using Gateway.Tests.Infrastructure;
using MockLlm;
using Xunit.Abstractions;

namespace Gateway.Tests.Savings;

/// <summary>
/// The accuracy figure: a workload with a known length distribution (fixed seed) runs through the
/// gateway; 200 streams complete and teach the estimator, then 100 are superseded or dropped at
/// random points, at 50 tokens/s (the rate the benchmark's targets use). The estimated tokens saved (from /metrics) is compared with the mock's ledger,
/// where the truth is tokensPlanned − tokensSent of every cancelled stream.
/// Set ACCURACY_REQUESTS to run a bigger workload (a third cancelled), e.g. 1200.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
[Collection(SavingsAccuracyCollection.Name)]
public sealed class SavingsAccuracyTests(ITestOutputHelper output)
{
    private const string Model = "acc-model";

    [Fact]
    public async Task KnownLengthDistribution_EstimatedTokensSaved_WithinTenPercentOfLedger()
    {
        var requests = int.TryParse(Environment.GetEnvironmentVariable("ACCURACY_REQUESTS"), out var n) && n >= 30 ? n : 300;
        var cancelled = requests / 3; // cut requests; those shorter than their cut point complete
        var completed = requests - cancelled;
        var route = "acc" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(new MockLlmOptions { TokensPerSecond = 50, TimeToFirstTokenMs = 20 }, routeId: route);
        var rng = new Random(20261125);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: completed + cancelled + (cancelled + 1) / 2);

        var training = Enumerable.Range(0, completed).Select(i => (Id: $"t{i}", Length: DrawLength(rng))).ToArray();
        var cuts = Enumerable.Range(0, cancelled).Select(i =>
        {
            var length = DrawLength(rng);
            // When a person interrupts does not depend on how long the answer would have been: the
            // cut point is drawn on its own, and an answer shorter than it simply completes. (Cutting
            // at a uniform fraction of each answer instead ties the cut to the length, which makes
            // long answers rarer among the cut ones than among all, and the mean-residual estimate
            // then reads high: +17 % measured.)
            return (Id: $"c{i}", Length: length, CutAt: rng.Next(1, 240), Supersede: i % 2 == 0);
        }).ToArray();

        await ForEachAsync(training, async t =>
            await StreamReading.SendAndReadAsync(stack.Client, Request(t.Id, t.Length)));
        await ForEachAsync(cuts, async c =>
        {
            using var client = StreamReading.NewClient(stack.Gateway.BaseAddress);
            var response = await StreamReading.SendAsync(client, Request(c.Id, c.Length));
            // The person reads CutAt tokens, then types again or closes the tab.
            var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            for (var read = 0; read < c.CutAt && await reader.ReadLineAsync() is { } line;)
            {
                read += line.Contains("\"content\":\"", StringComparison.Ordinal) && !line.Contains("\"content\":\"\"", StringComparison.Ordinal) ? 1 : 0;
            }

            if (c.Supersede)
            {
                await StreamReading.SendAndReadAsync(stack.Client,
                    StreamReading.ChatRequest("/v1/chat/completions", "next", c.Id, maxTokens: 1, model: "aux-model"));
                await StreamReading.ReadToEndAsync(response);
            }

            response.Dispose();
            client.Dispose();
        });
        await ended.WaitAsync();

        // Every cut request counts, cancelled or not: one whose last token beat the cut saved nothing.
        var ledger = stack.Ledger.Snapshot().Where(e => e.Model == Model && e.SessionId!.StartsWith('c')).ToArray();
        var truth = ledger.Sum(e => (double)(e.TokensPlanned - e.TokensSent));
        var samples = await PromText.ParseAsync(stack.Client);
        var estimated = PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_sum", ("route", route), ("model", Model));
        var learned = PromText.Sum(samples, "llm_gateway_cancellation_tokens_saved_count", ("route", route), ("model", Model), ("estimator", "learned"));
        var error = (estimated - truth) / truth;

        // What a perfect estimator knowing the true distribution would expect at each cut point:
        // the realised truth differs from it by chance alone (each answer's length is random), so
        // the estimator's own error is measured against this, and the ledger figure is reported.
        var expected = ledger.Where(e => e.Cancelled).Sum(e => ExpectedRemaining(e.TokensSent));
        var modelError = (estimated - expected) / expected;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"accuracy: {requests} requests, {completed} completed, {ledger.Count(e => e.Cancelled)} cancelled in the ledger ({learned} estimated by the learned model): estimated {estimated} tokens saved, ledger truth {truth} (error {error:+0.0%;-0.0%}), expectation under the true distribution {expected:0} (error {modelError:+0.0%;-0.0%})"));

        // The seed decides which cut requests are longer than their cut point (60 of 100 at the default size). A cut
        // is made when the client has read CutAt tokens, so a client that lags the mock (other test classes on the
        // two cores) lets a few with little left finish first: those count as saved nothing, and the ledger says so.
        var cuttable = cuts.Count(c => c.Length > c.CutAt);
        var cancelledInLedger = ledger.Count(e => e.Cancelled);
        var cutAt = cuts.ToDictionary(c => c.Id, c => c.CutAt);
        var ranOnBy = ledger.Where(e => !e.Cancelled && e.TokensPlanned > cutAt[e.SessionId!])
            .Select(e => e.TokensSent - cutAt[e.SessionId!]).Order().ToArray();
        Assert.Equal(cancelled, ledger.Length);
        Assert.True(cancelledInLedger >= cuttable * 3 / 4,
            $"{cancelledInLedger} of the {cuttable} cut requests longer than their cut point were cancelled; the others ran on for [{string.Join(", ", ranOnBy)}] tokens past the cut");
        Assert.True(learned >= ledger.Count(e => e.Cancelled) * 0.9, "the learned model, not the prior or the cap, made the estimates");
        Assert.InRange(modelError, -0.10, 0.10);
        // Chance alone moves the realised total by about 70/sqrt(cancellations) per cent here
        // (about ±10 % at 60 cancellations, one sigma); three sigmas still catches a broken estimator.
        Assert.InRange(error, -0.30, 0.30);
    }

    /// <summary>E[L − n | L > n] for the workload's length distribution, by a large fixed-seed sample of it.</summary>
    private static double ExpectedRemaining(int streamed)
    {
        var longer = TrueLengths.Where(l => l > streamed).ToArray();
        return longer.Length == 0 ? 0 : longer.Average(l => (double)(l - streamed));
    }

    private static readonly int[] TrueLengths = SampleLengths(200_000, seed: 7);

    private static int[] SampleLengths(int count, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, count).Select(_ => DrawLength(rng)).ToArray();
    }

    /// <summary>Right-skewed completion lengths, as chat answers are: log-normal around 120 tokens.</summary>
    private static int DrawLength(Random rng)
    {
        var normal = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        return (int)Math.Clamp(Math.Exp(Math.Log(120) + (0.5 * normal)), 5, 1000);
    }

    private static HttpRequestMessage Request(string sessionId, int length) =>
        StreamReading.ChatRequest("/v1/chat/completions", "question " + sessionId, sessionId, maxTokens: 2048, model: Model,
            headers: new Dictionary<string, string> { ["X-Mock-Completion-Tokens"] = length.ToString(CultureInfo.InvariantCulture) });

    private static Task ForEachAsync<T>(IEnumerable<T> items, Func<T, Task> body) =>
        Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (item, _) => await body(item));
}

/// <summary>The accuracy workload runs alone: its cuts are made by a reading client, and a client starved by other test classes cuts late.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SavingsAccuracyCollection
{
    public const string Name = "Savings accuracy (alone)";
}
