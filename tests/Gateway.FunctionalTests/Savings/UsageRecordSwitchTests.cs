using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Savings;

/// <summary><c>Gateway:Usage:Log</c>: the usage record is on by default and one setting switches it off; a record
/// names its fields as log pipelines read them. (The mixed run on a real process: Gateway.Deploy.Tests' UsageRecordTests.)</summary>
public sealed class UsageRecordSwitchTests
{
    private const string UsageCategory = "Gateway.Usage";

    [Theory]
    [InlineData(null, true)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    public async Task OneRecordPerRequest_UnlessSwitchedOff(string? setting, bool expected)
    {
        var logs = new LogCapture();
        var route = "usage-switch-" + (setting ?? "default");
        var stack = await Stack.StartAsync(routeId: route, builder: b => b.Logging.AddProvider(logs).AddFilter(UsageCategory, LogLevel.Information), configure: s =>
        {
            if (setting is not null)
            {
                s["Gateway:Usage:Log"] = setting;
            }
        });
        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "hi", "switch", maxTokens: 3));
        await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "hi", new string('k', 300), maxTokens: 3));

        // Stopping the host waits for every request it is processing, so each record that would be written has been.
        await stack.DisposeAsync();
        var records = logs.Entries.Where(e => e.Category == UsageCategory).ToList();
        if (!expected)
        {
            Assert.Empty(records);
            return;
        }

        Assert.Equal(2, records.Count);
        Assert.All(records, r => Assert.Equal(800, r.EventId.Id));
        string[] fields = ["route", "api", "model", "outcome", "tenant", "sessionKeyHash", "promptTokens", "completionTokens", "savedTokens",
            "estimator", "costSpent", "costSaved", "currency", "firstByteMs", "durationMs"];
        Assert.All(records, r => Assert.Equal(fields, r.State.Select(p => p.Key).Where(k => k != "{OriginalFormat}")));
        var completed = records.Single(r => r.State.Single(p => p.Key == "outcome").Value == "completed");
        Assert.Equal("3", completed.State.Single(p => p.Key == "completionTokens").Value);
        Assert.Equal("anonymous", completed.State.Single(p => p.Key == "tenant").Value);
        Assert.Equal("rejected", records.Single(r => r != completed).State.Single(p => p.Key == "outcome").Value);
    }

    [Fact]
    public async Task RouteWithoutSessionStreams_StillOneRecordPerRequest_WithWhoOutcomeAndTime_NoTokens()
    {
        var logs = new LogCapture();
        var stack = await Stack.StartAsync(routeId: "usage-plain", builder: b => b.Logging.AddProvider(logs).AddFilter(UsageCategory, LogLevel.Information),
            configure: s => s.Remove("ReverseProxy:Routes:usage-plain:Metadata:SessionStreams"));
        using (var request = StreamReading.ChatRequest("/v1/chat/completions", "hi", "plain-session", maxTokens: 3, authorization: "Bearer sk-plain"))
        {
            var transcript = await StreamReading.SendAndReadAsync(stack.Client, request);
            Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        }

        await stack.DisposeAsync();

        var record = Assert.Single(logs.Entries, e => e.Category == UsageCategory);
        string? Field(string name) => record.State.Single(p => p.Key == name).Value;
        Assert.Equal("usage-plain", Field("route"));
        Assert.Equal("chat_completions", Field("api"));
        Assert.Equal("completed", Field("outcome"));
        Assert.Matches("^[0-9a-f]{12}$", Field("tenant"));
        Assert.Null(Field("sessionKeyHash"));
        Assert.Null(Field("model"));
        Assert.Equal("0", Field("completionTokens"));
        Assert.DoesNotContain("sk-plain", record.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("plain-session", record.Text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("maybe")]
    [InlineData("1")]
    public async Task MalformedSwitch_RefusedAtStart(string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Usage:Log"] = value;

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Contains("Gateway:Usage", ExceptionText.Flatten(refused));
    }
}
