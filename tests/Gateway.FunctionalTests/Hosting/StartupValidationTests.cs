using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Hosting;

/// <summary>A bad setting stops the gateway at start with a message that names the key, whatever the
/// kind of mistake: out of range, wrong shape, or a value that does not even parse.</summary>
public sealed class StartupValidationTests
{
    private const string Route = "ReverseProxy:Routes:llm:Metadata:";

    [Theory]
    [InlineData("Gateway:Sessions:Sources:0", "X-Session-Id", "Gateway:Sessions:Sources")] // no kind
    [InlineData("Gateway:Sessions:Sources:0", "grpc:session", "Gateway:Sessions:Sources")] // unknown kind
    [InlineData("Gateway:Sessions:Sources:0", "header:X Session", "Gateway:Sessions:Sources")] // not a header name
    [InlineData("Gateway:Sessions:Sources:0", "body:metadata..id", "Gateway:Sessions:Sources")] // empty field in a path
    [InlineData("Gateway:Sessions:CancelPath", "/v1/sessions/cancel", "Gateway:Sessions:CancelPath")] // no {sessionId}
    [InlineData("Gateway:Sessions:MaxKeyBytes", "lots", "Gateway:Sessions:MaxKeyBytes")] // does not parse
    [InlineData("Gateway:RateLimits:TokenLimit", "0", "Gateway:RateLimits:TokenLimit")]
    [InlineData("Gateway:RateLimits:TokensPerPeriod", "-5", "Gateway:RateLimits:TokensPerPeriod")]
    [InlineData("Gateway:RateLimits:ReplenishmentPeriod", "00:00:00", "Gateway:RateLimits:ReplenishmentPeriod")]
    [InlineData("Gateway:RateLimits:ReplenishmentPeriod", "soon", "Gateway:RateLimits:ReplenishmentPeriod")]
    [InlineData("Gateway:RateLimits:MaxConcurrentStreams", "0", "Gateway:RateLimits:MaxConcurrentStreams")]
    [InlineData("Gateway:RateLimits:Anonymous", "PerPerson", "Gateway:RateLimits:Anonymous")]
    [InlineData("Gateway:ForwardedHeaders:KnownProxies:0", "10.0.0.300", "Gateway:ForwardedHeaders:KnownProxies")]
    [InlineData("Gateway:ForwardedHeaders:KnownNetworks:0", "10.0.0.0", "Gateway:ForwardedHeaders:KnownNetworks")]
    [InlineData("Gateway:Admin:Token", "short-token", "Gateway:Admin:Token")]
    [InlineData("Gateway:Shutdown:DrainTimeout", "-00:00:01", "Gateway:Shutdown:DrainTimeout")]
    [InlineData("Gateway:Shutdown:DrainTimeout", "02:00:00", "Gateway:Shutdown:DrainTimeout")]
    [InlineData("Gateway:Tokens:Counting", "Words", "Gateway:Tokens:Counting")]
    [InlineData("Gateway:Tokens:DefaultEncoding", "p50k_base", "Gateway:Tokens:DefaultEncoding")]
    [InlineData("Gateway:Tokens:ModelEncodings:gpt-4o", "r50k_base", "Gateway:Tokens:ModelEncodings")]
    [InlineData("Gateway:Tokens:QueueCapacity", "0", "Gateway:Tokens:QueueCapacity")]
    [InlineData("Gateway:Savings:PriorMeanTokens", "0", "Gateway:Savings:PriorMeanTokens")]
    [InlineData("Gateway:Savings:MinSamples", "0", "Gateway:Savings:MinSamples")]
    [InlineData("Gateway:Savings:Window", "8", "Gateway:Savings:Window")]
    [InlineData("Gateway:Savings:MaxDrainTime", "00:00:00", "Gateway:Savings:MaxDrainTime")]
    [InlineData("Gateway:Telemetry:MaxModelLabels", "-1", "Gateway:Telemetry:MaxModelLabels")]
    [InlineData("Gateway:Telemetry:MaxModelLabels", "5000", "Gateway:Telemetry:MaxModelLabels")]
    [InlineData(Route + "SessionStreams", "on", Route + "SessionStreams")]
    [InlineData(Route + "SessionStreams.Header", "X Session", Route + "SessionStreams.Header")]
    [InlineData(Route + "SessionStreams.Sources", "header:X-Session-Id,smoke:signal", Route + "SessionStreams.Sources")]
    [InlineData(Route + "SessionStreams.Sources", "", Route + "SessionStreams.Sources")]
    [InlineData(Route + "SessionStreams.CancelPolicy", "Later", Route + "SessionStreams.CancelPolicy")]
    public async Task BadSetting_Start_FailsWithMessageNamingTheKey(string key, string value, string named)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[key] = value;

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.True(ExceptionText.Flatten(error).Contains(named, StringComparison.Ordinal), $"'{named}' not named by: {error}");
    }

    /// <summary>The control: the boundary values the validators allow do start, so the theory above
    /// fails for the value and not for something else in the settings.</summary>
    [Fact]
    public async Task BoundaryValues_Start_Succeeds()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Sessions:Sources:0"] = "header:X-Session-Id";
        settings["Gateway:Sessions:Sources:1"] = "cookie:sid";
        settings["Gateway:Sessions:Sources:2"] = "body:metadata.session_id";
        settings["Gateway:Sessions:CancelPath"] = "/stop/{sessionId}";
        settings["Gateway:RateLimits:TokenLimit"] = "1";
        settings["Gateway:RateLimits:TokensPerPeriod"] = "1";
        settings["Gateway:RateLimits:ReplenishmentPeriod"] = "00:00:00.010";
        settings["Gateway:RateLimits:MaxConcurrentStreams"] = "1";
        settings["Gateway:RateLimits:Anonymous"] = "PerAddress";
        settings["Gateway:ForwardedHeaders:KnownProxies:0"] = "::1";
        settings["Gateway:ForwardedHeaders:KnownNetworks:0"] = "10.0.0.0/8";
        settings["Gateway:Admin:Token"] = new string('t', 16);
        settings["Gateway:Shutdown:DrainTimeout"] = "00:00:00";
        settings["Gateway:Tokens:Counting"] = "Tokenizer";
        settings["Gateway:Tokens:DefaultEncoding"] = "cl100k_base";
        settings["Gateway:Tokens:ModelEncodings:gpt-3.5*"] = "cl100k_base";
        settings["Gateway:Savings:PriorMeanTokens"] = "1";
        settings["Gateway:Savings:MinSamples"] = "1";
        settings["Gateway:Savings:Window"] = "16";
        settings["Gateway:Savings:MaxDrainTime"] = "00:00:01";
        settings["Gateway:Telemetry:MaxModelLabels"] = "0";
        settings[Route + "SessionStreams.Header"] = "X-Conversation-Id";
        settings[Route + "SessionStreams.Sources"] = "header:X-Session-Id, cookie:sid, body:metadata.session_id";
        settings[Route + "SessionStreams.CancelPolicy"] = "drain";

        var error = await Record.ExceptionAsync(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Null(error);
    }
}
