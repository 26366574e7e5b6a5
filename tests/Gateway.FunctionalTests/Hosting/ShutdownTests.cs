using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Hosting;

public sealed class ShutdownTests
{
    [Fact]
    public async Task HostStops_KeyedAndKeylessStreamsOutlivingTheDrainDeadline_GetShutdownEvent_ShortOnesFinish()
    {
        var mock = await global::MockLlm.MockLlmServer.StartAsync(new global::MockLlm.Generation.MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 10 });
        await using var mockScope = mock;
        // The short stream needs about 0.4 s more after the stop begins, the long one 50 s: a deadline of
        // 5 s leaves the short one room on a loaded machine (1 s was missed once in CI) and still cuts the long one.
        var gateway = await GatewayHost.StartAsync(mock.BaseAddress, s => s["Gateway:Shutdown:DrainTimeout"] = "00:00:05");
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        using var longStream = await StreamReading.SendAsync(client, StreamReading.ChatRequest("/v1/chat/completions", "long", "long", maxTokens: 400,
            headers: new Dictionary<string, string> { ["X-Mock-Completion-Tokens"] = "1000" }));
        using var keyless = await StreamReading.SendAsync(client, StreamReading.ChatRequest("/v1/chat/completions", "keyless", null, maxTokens: 400,
            headers: new Dictionary<string, string> { ["X-Mock-Completion-Tokens"] = "1000" }));
        using var shortStream = await StreamReading.SendAsync(client, StreamReading.ChatRequest("/v1/chat/completions", "short", "short", maxTokens: 8));
        await mock.Ledger.WaitForAsync(l => l.Count(e => e.TokensSent >= 1) == 3, Wait.Timeout);

        // What SIGTERM does: the host stops.
        var lifetime = gateway.Services.GetRequiredService<IHostApplicationLifetime>();
        var stopping = gateway.DisposeAsync().AsTask();
        var longTranscript = await StreamReading.ReadToEndAsync(longStream);
        var keylessTranscript = await StreamReading.ReadToEndAsync(keyless);
        var shortTranscript = await StreamReading.ReadToEndAsync(shortStream);
        await stopping;

        Assert.True(lifetime.ApplicationStopping.IsCancellationRequested);
        Assert.True(longTranscript.EndedCleanly, $"ended with {longTranscript.ReadError}");
        Assert.Equal("gateway_shutdown",
            JsonDocument.Parse(longTranscript.DataEvents[^1]).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.True(keylessTranscript.EndedCleanly, $"ended with {keylessTranscript.ReadError}");
        Assert.Equal("gateway_shutdown",
            JsonDocument.Parse(keylessTranscript.DataEvents[^1]).RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("[DONE]", shortTranscript.DataEvents[^1]);
        var ledger = await mock.Ledger.WaitForAsync(l => l.All(e => e.EndedAt is not null), Wait.Timeout);
        Assert.True(ledger.Single(e => e.SessionId == "long").Cancelled);
        Assert.True(ledger.Single(e => e.SessionId is null).Cancelled);
        Assert.True(ledger.Single(e => e.SessionId == "short").Completed);
    }

    [Theory]
    [InlineData("Gateway:Shutdown:ReadinessDelay", "-00:00:01")]
    [InlineData("Gateway:Shutdown:ReadinessDelay", "00:10:00")]
    [InlineData("Gateway:Shutdown:DrainTimeout", "-00:00:01")]
    public async Task BadShutdownSetting_StartFails_MessageNamesTheKey(string key, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[key] = value;
        // Thrown while the host is built (its HostOptions read the shutdown options) or else at start.
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = GatewayHost.Build(settings);
            await app.StartAsync();
        });
        Assert.Contains(key, error.Message);
    }

    [Fact]
    public async Task ReadinessDelay_Zero_IsAllowed()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Shutdown:ReadinessDelay"] = "00:00:00";
        await using var app = GatewayHost.Build(settings);
        await app.StartAsync();
        Assert.Equal(TimeSpan.Zero, app.Services.GetRequiredService<IOptions<Gateway.Hosting.ShutdownOptions>>().Value.ReadinessDelay);
        await app.StopAsync();
    }
}
