using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Affinity;

/// <summary>Bad affinity settings stop the gateway at start, naming the key.</summary>
public sealed class AffinityConfigTests
{
    private const string Metadata = "ReverseProxy:Routes:llm:Metadata:";
    private const string Affinity = Metadata + "SessionStreams.Affinity";

    public static TheoryData<string, string, string> BadValues => new()
    {
        { Affinity, "yes", Affinity },
        { Affinity, "1", Affinity },
        { Affinity, "", Affinity },
        { Affinity, "true; DROP TABLE", Affinity },
        { Affinity, "tru\u0000e", Affinity },
        { Affinity, new string('t', 100_000), Affinity },
        { Metadata + "SessionStreams", "false", Affinity }, // affinity needs session streams for its key
        { "Gateway:Affinity:MoveTtl", "00:00:01", "Gateway:Affinity:MoveTtl" },
        { "Gateway:Affinity:MoveTtl", "forever", "Gateway:Affinity:MoveTtl" },
        { "Gateway:Affinity:MaxRememberedMoves", "0", "Gateway:Affinity:MaxRememberedMoves" },
        { "Gateway:Affinity:MaxRememberedMoves", "99999999999", "Gateway:Affinity:MaxRememberedMoves" },
    };

    [Theory]
    [MemberData(nameof(BadValues))]
    public async Task BadSetting_Start_FailsNamingTheKey(string key, string value, string named)
    {
        var settings = Settings();
        settings[key] = value;

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Contains(named, ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AffinityWithoutSessionStreams_Start_FailsNamingTheKey()
    {
        var settings = Settings();
        settings.Remove(Metadata + "SessionStreams");

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Contains(Affinity, ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClusterWithItsOwnCookieAffinity_Start_FailsNamingTheKey()
    {
        var settings = Settings();
        settings["ReverseProxy:Clusters:llm:SessionAffinity:Enabled"] = "true";
        settings["ReverseProxy:Clusters:llm:SessionAffinity:Policy"] = "HashCookie";
        settings["ReverseProxy:Clusters:llm:SessionAffinity:AffinityKeyName"] = "backend";

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Contains(Affinity, ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    /// <summary>The control: the settings above with good values start.</summary>
    [Theory]
    [InlineData("true")]
    [InlineData("False")]
    public async Task GoodValues_Start_Succeeds(string affinity)
    {
        var settings = Settings();
        settings[Affinity] = affinity;
        settings["Gateway:Affinity:MoveTtl"] = "00:01:00";
        settings["Gateway:Affinity:MaxRememberedMoves"] = "1";

        Assert.Null(await Record.ExceptionAsync(() => GatewayHost.StartAndStopAsync(settings)));
    }

    private static Dictionary<string, string?> Settings()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["ReverseProxy:Clusters:llm:Destinations:second:Address"] = "http://127.0.0.1:10/";
        settings[Affinity] = "true";
        return settings;
    }
}
