using Gateway.Savings;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Savings;

public sealed class SavingsEstimatorTests
{
    private const string Model = "llama3";

    private static SavingsEstimator NewEstimator(int minSamples = 20, int window = 1024, int prior = 256) =>
        new(Options.Create(new SavingsOptions { MinSamples = minSamples, Window = window, PriorMeanTokens = prior }));

    private static SavingsEstimator Learned(IEnumerable<long> lengths, int minSamples = 20, int window = 1024)
    {
        var estimator = NewEstimator(minSamples, window);
        foreach (var length in lengths)
        {
            estimator.RecordCompleted(Model, length);
        }

        return estimator;
    }

    /// <summary>E[L − n | L &gt; n] over the samples, 0 when none is longer than n.</summary>
    private static double ConditionalMeanResidual(IReadOnlyList<long> samples, long streamed)
    {
        double sum = 0;
        var longer = 0;
        foreach (var length in samples)
        {
            if (length > streamed)
            {
                sum += length - streamed;
                longer++;
            }
        }

        return longer == 0 ? 0 : sum / longer;
    }

    [Fact]
    public void FixedLengthAfterMinSamples_Estimate_IsRemainderLearned()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 20));

        var estimate = estimator.Estimate(Model, streamed: 30, maxTokens: null);

        Assert.Equal(new SavingsEstimate(70, Estimator.Learned), estimate);
        Assert.Equal("learned", estimate.EstimatorLabel);
    }

    [Fact]
    public void UniformLengths_Estimate_IsTheConditionalMeanResidual()
    {
        var random = new Random(1234);
        var samples = Enumerable.Range(0, 1000).Select(_ => (long)random.Next(1, 201)).ToList();
        var estimator = Learned(samples);

        foreach (var streamed in new long[] { 0, 1, 37, 100, 150, 199 })
        {
            var estimate = estimator.Estimate(Model, streamed, maxTokens: null);

            Assert.Equal(Estimator.Learned, estimate.Estimator);
            Assert.InRange(estimate.Tokens - ConditionalMeanResidual(samples, streamed), -0.5, 0.5);
            Assert.InRange(estimate.Tokens, (200 - streamed) / 2.0 - 10, (200 - streamed) / 2.0 + 10); // ~ (200 − n + 1) / 2
        }
    }

    [Fact]
    public void ExponentialLengths_Estimate_IsConditionalMeanAndRoughlyMemoryless()
    {
        var random = new Random(99);
        const double mean = 300;
        var samples = Enumerable.Range(0, 1024).Select(_ => (long)Math.Ceiling(-Math.Log(1 - random.NextDouble()) * mean)).ToList();
        var estimator = Learned(samples);

        foreach (var streamed in new long[] { 0, 50, 150, 300, 600 })
        {
            var estimate = estimator.Estimate(Model, streamed, maxTokens: null);

            Assert.Equal(Estimator.Learned, estimate.Estimator);
            Assert.InRange(estimate.Tokens - ConditionalMeanResidual(samples, streamed), -0.5, 0.5);
            Assert.InRange(estimate.Tokens, mean * 0.75, mean * 1.25);
        }
    }

    [Fact]
    public void BeforeMinSamples_Estimate_UsesPrior()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 19));

        Assert.Equal(new SavingsEstimate(200, Estimator.Prior), estimator.Estimate(Model, 56, null));
        Assert.Equal(new SavingsEstimate(0, Estimator.Prior), estimator.Estimate(Model, 300, null));
        Assert.Equal(new SavingsEstimate(256, Estimator.Prior), estimator.Estimate("never-seen", 0, null));
        Assert.Equal("prior", estimator.Estimate(Model, 56, null).EstimatorLabel);
    }

    [Fact]
    public void CapSmallerThanExpected_Estimate_IsCapMinusStreamed()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 20));

        var estimate = estimator.Estimate(Model, streamed: 30, maxTokens: 50);

        Assert.Equal(new SavingsEstimate(20, Estimator.Cap), estimate);
        Assert.Equal("cap", estimate.EstimatorLabel);
    }

    [Fact]
    public void CapLargerThanExpected_Estimate_IsLearned()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 20));

        Assert.Equal(new SavingsEstimate(70, Estimator.Learned), estimator.Estimate(Model, 30, maxTokens: 4096));
    }

    [Theory]
    [InlineData(50, 50)]
    [InlineData(80, 50)]
    [InlineData(10, 0)]
    [InlineData(10, -1)]
    public void StreamedAtOrPastCap_Estimate_IsZero(long streamed, long cap)
    {
        var learned = Learned(Enumerable.Repeat(100L, 20));
        var prior = NewEstimator();

        Assert.Equal(new SavingsEstimate(0, Estimator.Cap), learned.Estimate(Model, streamed, cap));
        Assert.Equal(new SavingsEstimate(0, Estimator.Cap), prior.Estimate(Model, streamed, cap));
    }

    [Fact]
    public void StreamedPastEverySample_Estimate_IsZeroLearned()
    {
        var random = new Random(7);
        var estimator = Learned(Enumerable.Range(0, 100).Select(_ => (long)random.Next(10, 500)));

        Assert.Equal(new SavingsEstimate(0, Estimator.Learned), estimator.Estimate(Model, 500, maxTokens: 10_000));
        Assert.Equal(new SavingsEstimate(0, Estimator.Learned), estimator.Estimate(Model, 1_000_000, maxTokens: null));
    }

    [Fact]
    public void AnyInputs_Estimate_NeverNegativeNorAboveCap()
    {
        var random = new Random(2024);
        var estimator = Learned(Enumerable.Range(0, 500).Select(_ => (long)random.Next(0, 2000)));
        var empty = NewEstimator();

        for (var i = 0; i < 5000; i++)
        {
            var streamed = (long)random.Next(-100, 3000);
            long? cap = random.Next(4) == 0 ? null : random.Next(-10, 3000);
            foreach (var model in new[] { Model, "cold" })
            {
                var estimate = (model == Model ? estimator : empty).Estimate(model, streamed, cap);

                Assert.True(estimate.Tokens >= 0, $"n={streamed} cap={cap}: {estimate}");
                if (cap is { } c)
                {
                    Assert.True(estimate.Tokens <= Math.Max(0, c - Math.Max(0, streamed)), $"n={streamed} cap={c}: {estimate}");
                }
            }
        }
    }

    [Fact]
    public void NegativeStreamed_Estimate_TreatedAsZero()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 20));

        Assert.Equal(new SavingsEstimate(100, Estimator.Learned), estimator.Estimate(Model, -5, null));
    }

    [Fact]
    public void WindowFull_RecordCompleted_ForgetsTheOldDistribution()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 16), minSamples: 16, window: 16);

        estimator.RecordCompleted(Model, 300); // 8 of the 16 replaced
        for (var i = 1; i < 8; i++)
        {
            estimator.RecordCompleted(Model, 300);
        }

        var halfReplaced = estimator.Estimate(Model, 0, null);
        for (var i = 0; i < 8 + 16 * 3; i++)
        {
            estimator.RecordCompleted(Model, 300);
        }

        Assert.Equal(new SavingsEstimate(200, Estimator.Learned), halfReplaced);
        Assert.Equal(new SavingsEstimate(300, Estimator.Learned), estimator.Estimate(Model, 0, null));
        Assert.Equal(new SavingsEstimate(200, Estimator.Learned), estimator.Estimate(Model, 100, null)); // no 100s left to pull it down
    }

    [Fact]
    public void Models_RecordCompleted_AreLearnedSeparately()
    {
        var estimator = Learned(Enumerable.Repeat(100L, 20));
        for (var i = 0; i < 20; i++)
        {
            estimator.RecordCompleted("other-model", 1000);
        }

        Assert.Equal(70, estimator.Estimate(Model, 30, null).Tokens);
        Assert.Equal(970, estimator.Estimate("other-model", 30, null).Tokens);
    }

    [Fact]
    public void SumLonger_EveryLengthAndCut_MatchesTheScalarSum()
    {
        // The vectorised scan against a plain loop: every length from empty to past several vector
        // widths (the scalar tail included), cuts below, inside and above the samples, and lengths
        // far past any answer (70 of them sum without overflow).
        var random = new Random(17);
        for (var length = 0; length <= 70; length++)
        {
            var samples = Enumerable.Range(0, length)
                .Select(i => i % 11 == 10 ? long.MaxValue / 128 : random.NextInt64(0, 5000))
                .ToArray();
            foreach (var streamed in new long[] { 0, 1, 2500, 4999, 5000, long.MaxValue / 256, long.MaxValue / 128 })
            {
                var longer = samples.Where(s => s > streamed).ToArray();
                var expected = (Sum: longer.Sum(s => s - streamed), Longer: (long)longer.Length);

                Assert.Equal(expected, SavingsEstimator.CompletionLengths.SumLonger(samples, streamed));
            }
        }
    }
}
