using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using MockLlm;

namespace Gateway.Tests.Hosting;

public sealed class ConfigurationTests
{
    internal static string RepoFile(params string[] parts)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        return Path.Combine([dir.FullName, .. parts]);
    }

    [Fact]
    public async Task ShippedAppsettings_DestinationFromEnvironmentVariable_TracksSessions()
    {
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 0 });
        var prefix = $"GWTEST_{Guid.NewGuid():N}_";
        Environment.SetEnvironmentVariable(prefix + "ReverseProxy__Clusters__llm__Destinations__primary__Address", mock.BaseAddress.ToString());
        try
        {
            await using var gateway = await GatewayHost.StartAsync(new Dictionary<string, string?>(), builder =>
            {
                builder.Configuration.AddJsonFile(RepoFile("gateway", "appsettings.json"), optional: false);
                builder.Configuration.AddEnvironmentVariables(prefix);
            });
            using var client = StreamReading.NewClient(gateway.BaseAddress);
            using var response = await StreamReading.SendAsync(client, StreamReading.ChatRequest("/v1/chat/completions", "hi", "cfg", maxTokens: 40,
                headers: new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "20" }));
            await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == "cfg" && e.TokensSent > 0), Wait.Timeout);

            Assert.Equal(1, gateway.Registry.Count); // the shipped route has session streams on
            var transcript = await StreamReading.ReadToEndAsync(response);
            Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        }
        finally
        {
            Environment.SetEnvironmentVariable(prefix + "ReverseProxy__Clusters__llm__Destinations__primary__Address", null);
        }
    }

    [Theory]
    [InlineData("Gateway:Sessions:MaxKeyBytes", "0")]
    [InlineData("Gateway:Sessions:HeaderName", "X Session")]
    [InlineData("Gateway:Sessions:CredentialHeader", "Author:ization")]
    public async Task BadSessionSetting_StartFails_MessageNamesTheKey(string key, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[key] = value;
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => GatewayHost.StartAndStopAsync(settings));
        Assert.Contains(key, error.Message);
    }

    [Fact]
    public async Task BadRouteMetadata_StartFails_MessageNamesTheKey()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["ReverseProxy:Routes:llm:Metadata:SessionStreams"] = "yes please";
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));
        Assert.Contains("ReverseProxy:Routes:llm:Metadata:SessionStreams", ExceptionText.Flatten(error));
    }
}
