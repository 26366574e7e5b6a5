using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Telemetry;

public sealed class ModelLabelsTests
{
    private static ModelLabels NewLabels(string[]? models = null, int maxModelLabels = 20) =>
        new(Options.Create(new TelemetryOptions { Models = models ?? [], MaxModelLabels = maxModelLabels }));

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void NoModel_For_IsUnknown(string? model) =>
        Assert.Equal(ModelLabels.Unknown, NewLabels().For(model));

    [Theory]
    [InlineData("a\tb")]
    [InlineData("gpt-4o\n")]
    [InlineData("model\u007f")]
    [InlineData("mod\u00e8le")]
    [InlineData("\u0000")]
    [InlineData("llama\U0001F999")]
    public void NonPrintableModel_For_IsOther(string model) =>
        Assert.Equal(ModelLabels.Other, NewLabels().For(model));

    [Fact]
    public void ModelOver64Chars_For_IsOther()
    {
        var labels = NewLabels();

        Assert.Equal(new string('m', 64), labels.For(new string('m', 64)));
        Assert.Equal(ModelLabels.Other, labels.For(new string('m', 65)));
        Assert.Equal(ModelLabels.Other, labels.For(new string('m', 100_000)));
    }

    [Fact]
    public void PrintableAsciiEdges_For_AreOwnLabels()
    {
        var labels = NewLabels();

        Assert.Equal(" ~", labels.For(" ~"));
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct:q4_K_M", labels.For("meta-llama/Llama-3.1-8B-Instruct:q4_K_M"));
    }

    [Fact]
    public void ConfiguredList_For_LabelsOnlyListedModels()
    {
        var labels = NewLabels(["gpt-4o", "llama3.2"], maxModelLabels: 1000);

        Assert.Equal("gpt-4o", labels.For("gpt-4o"));
        Assert.Equal("llama3.2", labels.For("llama3.2"));
        Assert.Equal(ModelLabels.Other, labels.For("GPT-4O"));
        Assert.Equal(ModelLabels.Other, labels.For("mistral"));
        Assert.Equal(ModelLabels.Other, labels.For("mistral")); // not admitted by being seen
        Assert.Equal(ModelLabels.Unknown, labels.For(null));
    }

    [Fact]
    public void NoList_For_AdmitsUpToMaxThenOther()
    {
        var labels = NewLabels(maxModelLabels: 3);

        Assert.Equal("a", labels.For("a"));
        Assert.Equal("b", labels.For("b"));
        Assert.Equal("a", labels.For("a"));
        Assert.Equal("c", labels.For("c"));
        Assert.Equal(ModelLabels.Other, labels.For("d"));
        Assert.Equal("b", labels.For("b")); // admitted names keep their label
        Assert.Equal(ModelLabels.Other, labels.For("e"));
    }

    [Fact]
    public void MaxZero_For_IsAlwaysOther() =>
        Assert.Equal(ModelLabels.Other, NewLabels(maxModelLabels: 0).For("gpt-4o"));

    [Fact]
    public void TenThousandDistinctNames_For_YieldAtMostMaxLabelsPlusOther()
    {
        var labels = NewLabels(maxModelLabels: 20);

        var seen = Enumerable.Range(0, 10_000).Select(i => labels.For($"model-{i}")).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(21, seen.Count);
        Assert.Contains(ModelLabels.Other, seen);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => $"model-{i}").Append(ModelLabels.Other).ToHashSet(StringComparer.Ordinal), seen);
    }
}
