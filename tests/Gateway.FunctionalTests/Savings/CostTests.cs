using System.Text.Json;
using Gateway.Savings;
using Gateway.Telemetry;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Protocols;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Savings;

/// <summary>Cancellations counted in money: cost saved = tokens saved x output price, cost spent = tokens
/// spent x output price + reported prompt tokens x input price, by the most specific configured price.</summary>
public sealed class CostTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20" };

    private static void Prices(Dictionary<string, string?> s)
    {
        s["Gateway:Pricing:Currency"] = "EUR";
        s["Gateway:Pricing:Models:claude-mock-3:InputPerMillion"] = "2";
        s["Gateway:Pricing:Models:claude-mock-3:OutputPerMillion"] = "10";
        s["Gateway:Pricing:Models:gpt-4o*:InputPerMillion"] = "0.15";
        s["Gateway:Pricing:Models:gpt-4o*:OutputPerMillion"] = "0.6";
        s["Gateway:Pricing:Models:gpt-4*:OutputPerMillion"] = "30";
        s["Gateway:Pricing:Models:*-mini:OutputPerMillion"] = "50"; // matches too, but has fewer literal characters
        s["Gateway:Pricing:Models:free-*:OutputPerMillion"] = "0";
    }

    [Fact]
    public async Task SupersededAndDroppedStreams_PricedModels_CostCountersAreTokensTimesPrice()
    {
        var route = "cost" + Guid.NewGuid().ToString("N")[..8];
        await using var stack = await Stack.StartAsync(configure: Prices, routeId: route);
        using var metrics = new MetricRecorder(route);

        // Superseded: an Anthropic stream reports its prompt tokens in message_start, so the spent cost has an input part.
        using var old = await StreamReading.SendAsync(stack.Client, ApiCase.Messages.Request("claude-mock-3", "tell me a long story", 400, "cost-a", Slow));
        await stack.WaitForEntryAsync("cost-a", e => e.TokensSent >= 3);
        await StreamReading.SendAndReadAsync(stack.Client, ApiCase.Messages.Request("claude-mock-3", "short", 3, "cost-a"));
        var oldTranscript = await StreamReading.ReadToEndAsync(old);
        var prompt = oldTranscript.DataEvents
            .Select(d => JsonDocument.Parse(d).RootElement)
            .First(e => e.GetProperty("type").GetString() == "message_start")
            .GetProperty("message").GetProperty("usage").GetProperty("input_tokens").GetInt64();
        Assert.True(prompt > 0);

        // Dropped: a chat stream priced by the pattern gpt-4o* (the most literal characters of the three that match).
        using (var dropping = StreamReading.NewClient(stack.Gateway.BaseAddress))
        {
            using var response = await StreamReading.SendAsync(dropping,
                StreamReading.ChatRequest("/v1/chat/completions", "tell me a long story", "cost-b", maxTokens: 400, model: "gpt-4o-mini", headers: Slow));
            await stack.WaitForEntryAsync("cost-b", e => e.TokensSent >= 3);
        }

        var claude = await Cancellation(metrics, "claude-mock-3");
        var gpt = await Cancellation(metrics, "gpt-4o-mini");

        Assert.Equal(claude.Saved * 10 / 1e6, claude.CostSaved, 12);
        Assert.Equal(((claude.Spent * 10) + (prompt * 2)) / 1e6, claude.CostSpent, 12);
        Assert.Equal(gpt.Saved * 0.6 / 1e6, gpt.CostSaved, 12);
        Assert.Equal(gpt.Spent * 0.6 / 1e6, gpt.CostSpent, 12); // no usage arrived: prompt tokens unknown
        Assert.True(claude.Saved > 0 && gpt.Saved > 0 && claude.Spent > 0 && gpt.Spent > 0);

        // As Prometheus reads them: counters with the currency as a label.
        var samples = await PromText.ParseAsync(stack.Client);
        Assert.Equal(claude.CostSaved, PromText.Sum(samples, "llm_gateway_cancellation_cost_saved_total",
            ("route", route), ("model", "claude-mock-3"), ("api", "messages"), ("currency", "EUR")), 12);
        Assert.Equal(gpt.CostSpent, PromText.Sum(samples, "llm_gateway_cancellation_cost_spent_total",
            ("route", route), ("model", "gpt-4o-mini"), ("api", "chat_completions"), ("currency", "EUR")), 12);
    }

    [Fact]
    public async Task UnpricedModel_Cancelled_NoCostSeries_LoggedOnce()
    {
        var route = "costfree" + Guid.NewGuid().ToString("N")[..8];
        var logs = new LogCapture();
        await using var stack = await Stack.StartAsync(configure: Prices, routeId: route, builder: b => b.Logging.AddProvider(logs));
        using var metrics = new MetricRecorder(route);
        using var cancelled = new MetricSignal("llm_gateway.cancellation.tokens_saved", route, count: 2);

        for (var i = 0; i < 2; i++)
        {
            using var old = await StreamReading.SendAsync(stack.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "tell me a long story", "free", maxTokens: 400, model: "unpriced-model", headers: Slow));
            await stack.WaitForEntryAsync("free", e => e.TokensSent >= 2, index: 2 * i);
            await StreamReading.SendAndReadAsync(stack.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "short", "free", maxTokens: 2, model: "free-model"));
            await StreamReading.ReadToEndAsync(old);
        }

        // Two superseded streams of the unpriced model (recorded before their responses ended).
        await cancelled.WaitAsync();
        Assert.Equal(2, metrics.All("llm_gateway.cancellation.tokens_saved").Count(m => m["model"] == "unpriced-model"));

        Assert.DoesNotContain(metrics.All("llm_gateway.cancellation.cost_saved"), m => m["model"] == "unpriced-model");
        Assert.DoesNotContain(metrics.All("llm_gateway.cancellation.cost_spent"), m => m["model"] == "unpriced-model");
        var unpriced = logs.Entries.Where(e => e.EventId.Id == Gateway.Telemetry.EventIds.NoPriceSeen).ToList();
        Assert.Single(unpriced);
        Assert.Contains("unpriced-model", unpriced[0].Text, StringComparison.Ordinal);
        Assert.Equal(LogLevel.Warning, unpriced[0].Level);
    }

    [Fact]
    public async Task ConfiguredTelemetryModels_WithoutPrice_LoggedAtStartOnce()
    {
        var logs = new LogCapture();
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        Prices(settings);
        settings["Gateway:Telemetry:Models:0"] = "claude-mock-3";
        settings["Gateway:Telemetry:Models:1"] = "gpt-4o";
        settings["Gateway:Telemetry:Models:2"] = "llama-local";
        await using var gateway = await GatewayHost.StartAsync(settings, b => b.Logging.AddProvider(logs));

        var atStart = logs.Entries.Where(e => e.EventId.Id == Gateway.Telemetry.EventIds.NoPriceAtStart).ToList();
        Assert.Single(atStart);
        Assert.Contains("llama-local", atStart[0].Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gpt-4o", "gpt-4o*")]             // a pattern's * matches nothing too
    [InlineData("gpt-4o-mini", "gpt-4o*")]        // longest pattern wins over gpt-4* and *-mini
    [InlineData("GPT-4O-MINI", "gpt-4o*")]        // case ignored, as configuration keys are
    [InlineData("gpt-4-turbo", "gpt-4*")]
    [InlineData("o3-mini", "*-mini")]
    [InlineData("gpt-4o-2024", "gpt-4o-2024")]    // an exact name wins over every pattern
    [InlineData("mistral", "*")]
    [InlineData("other", "*")]                    // the labels for many models: only a bare * prices them
    [InlineData("unknown", "*")]
    public void Match_MostSpecificPriceWins(string label, string pattern)
    {
        var prices = NewPrices(("gpt-4o*", 1), ("gpt-4*", 2), ("*-mini", 3), ("gpt-4o-2024", 4), ("*", 5), ("oth*", 6), ("unknown", 7));

        Assert.Equal(pattern, prices.Match(label)?.Pattern);
    }

    [Fact]
    public void Match_NoCatchAll_OtherAndUnknownUnpriced()
    {
        var prices = NewPrices(("oth*", 1), ("unknown", 2), ("*er", 3));

        Assert.Null(prices.Match(ModelLabels.Other));
        Assert.Null(prices.Match(ModelLabels.Unknown));
        Assert.Equal("*er", prices.Match("llama-server")?.Pattern);
        Assert.Null(prices.Match("llama"));
    }

    [Theory]
    [InlineData("a*b*c", "axxbyyc", true)]
    [InlineData("a*b*c", "axxbyy", false)]
    [InlineData("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false)] // backtracking stays linear
    [InlineData("**", "", true)]
    [InlineData("a", "", false)]
    public void Glob_MatchesStarsAsAnyRun(string pattern, string text, bool expected)
    {
        Assert.Equal(expected, ModelPrices.Glob(pattern, text));
    }

    [Fact]
    public void Cost_IsTokensTimesPricePerMillion_Exactly()
    {
        var price = new Price(InputPerMillion: 2.5m, OutputPerMillion: 10m, "m");

        var (saved, spent) = price.Cost(tokensSaved: 300, tokensSpent: 100, promptTokens: 1000);

        Assert.Equal(0.003, saved);
        Assert.Equal(0.0035, spent);
        Assert.Equal(0.001, price.Cost(0, 100, null).Spent);
    }

    public static TheoryData<string, string, string> BadSettings => new()
    {
        { "Gateway:Pricing:Currency", "usd", "Gateway:Pricing:Currency" },
        { "Gateway:Pricing:Currency", "US", "Gateway:Pricing:Currency" },
        { "Gateway:Pricing:Currency", "USDX", "Gateway:Pricing:Currency" },
        { "Gateway:Pricing:Currency", "", "Gateway:Pricing:Currency" },
        { "Gateway:Pricing:Currency", "E\u00dcR", "Gateway:Pricing:Currency" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "-0.01", "Gateway:Pricing:Models:gpt-4o:OutputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:InputPerMillion", "-5", "Gateway:Pricing:Models:gpt-4o:InputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "ten", "Gateway:Pricing:Models:gpt-4o:OutputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "1,5", "Gateway:Pricing:Models:gpt-4o:OutputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "1e3", "Gateway:Pricing:Models:gpt-4o:OutputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "NaN", "Gateway:Pricing:Models:gpt-4o:OutputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "99999999999", "Gateway:Pricing:Models:gpt-4o:OutputPerMillion" },
        { "Gateway:Pricing:Models:gpt-4o:OutputPerMillion", "", "Gateway:Pricing:Models:gpt-4o" },
        { "Gateway:Pricing:Models:" + new string('*', 200) + ":OutputPerMillion", "1", "Gateway:Pricing:Models:***" },
        { "Gateway:Pricing:Models:gpt\u0001x:OutputPerMillion", "1", "Gateway:Pricing:Models:gpt?x" },
        { "Gateway:Pricing:Models:ollama:Model", "llama3:8b\n", "Gateway:Pricing:Models:ollama:Model" },
    };

    [Theory]
    [MemberData(nameof(BadSettings))]
    public async Task BadPricing_Start_FailsWithMessageNamingTheKey(string key, string value, string named)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[key] = value;
        if (key.EndsWith(":Model", StringComparison.Ordinal))
        {
            settings[key[..^":Model".Length] + ":OutputPerMillion"] = "1";
        }

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.True(ExceptionText.Flatten(error).Contains(named, StringComparison.Ordinal), $"'{named}' not named by: {error}");
    }

    [Fact]
    public async Task BoundaryPricing_Start_Succeeds()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Pricing:Currency"] = "JPY";
        settings["Gateway:Pricing:Models:gpt-4o:InputPerMillion"] = "0";
        settings["Gateway:Pricing:Models:gpt-4o:OutputPerMillion"] = "1000000";
        settings["Gateway:Pricing:Models:*:OutputPerMillion"] = "0.000001";
        settings["Gateway:Pricing:Models:" + new string('a', 127) + "*:InputPerMillion"] = "1";
        settings["Gateway:Pricing:Models:ollama-llama3:Model"] = "llama3:8b";
        settings["Gateway:Pricing:Models:ollama-llama3:OutputPerMillion"] = "1";

        var error = await Record.ExceptionAsync(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Null(error);
    }

    [Fact]
    public void ModelKey_NamesWithColon_PricedThroughModelField()
    {
        var options = new PricingOptions();
        options.Models["ollama-llama3"] = new ModelPrice { Model = "llama3:8b", OutputPerMillion = "1" };
        var prices = new ModelPrices(Options.Create(options), Options.Create(new TelemetryOptions()), Microsoft.Extensions.Logging.Abstractions.NullLogger<ModelPrices>.Instance);

        Assert.Equal("llama3:8b", prices.Match("llama3:8b")?.Pattern);
        Assert.Null(prices.Match("ollama-llama3"));
    }

    private static async Task<(double Saved, double Spent, double CostSaved, double CostSpent)> Cancellation(MetricRecorder metrics, string model)
    {
        var costSaved = await metrics.WaitForAsync("llm_gateway.cancellation.cost_saved", m => m["model"] == model);
        var costSpent = await metrics.WaitForAsync("llm_gateway.cancellation.cost_spent", m => m["model"] == model);
        var saved = await metrics.WaitForAsync("llm_gateway.cancellation.tokens_saved", m => m["model"] == model);
        var spent = await metrics.WaitForAsync("llm_gateway.cancellation.tokens_spent", m => m["model"] == model);
        Assert.Equal("EUR", costSaved["currency"]);
        return (saved.Value, spent.Value, costSaved.Value, costSpent.Value);
    }

    private static ModelPrices NewPrices(params (string Pattern, decimal Output)[] prices)
    {
        var options = new PricingOptions();
        foreach (var (pattern, output) in prices)
        {
            options.Models[pattern] = new ModelPrice { OutputPerMillion = output.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        }

        return new ModelPrices(Options.Create(options), Options.Create(new TelemetryOptions()), Microsoft.Extensions.Logging.Abstractions.NullLogger<ModelPrices>.Instance);
    }
}
