using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Chat;

/// <summary>How the gateway serves the page's files, without a browser.</summary>
public sealed class ChatPageServingTests
{
    [Fact]
    public async Task Enabled_PageAndVendoredVue_ServedByGatewayWithNothingFromOtherOrigins()
    {
        await using var stack = await Stack.StartAsync(configure: settings => settings["Gateway:Chat:Enabled"] = "true");

        using var noRedirects = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { BaseAddress = stack.Gateway.BaseAddress };
        using var redirect = await noRedirects.GetAsync("/chat?mode=sse");
        using var page = await stack.Client.GetAsync("/chat/");
        using var vue = await stack.Client.GetAsync("/chat/vendor/vue.global.prod.js");
        using var missing = await stack.Client.GetAsync("/chat/nope.js");

        Assert.Equal(302, (int)redirect.StatusCode);
        Assert.Equal("/chat/?mode=sse", redirect.Headers.Location?.OriginalString);
        Assert.Equal(200, (int)page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("connect-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        var html = await page.Content.ReadAsStringAsync();
        Assert.Contains("<main id=\"app\"", html, StringComparison.Ordinal);
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.Equal(200, (int)vue.StatusCode);
        Assert.Equal("text/javascript", vue.Content.Headers.ContentType?.MediaType);
        Assert.StartsWith("/**\n* vue v3.", await vue.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(404, (int)missing.StatusCode);
        Assert.Empty(stack.Ledger.Snapshot());
    }

    [Fact]
    public async Task Disabled_ChatPath_NotServedByGatewayButProxied()
    {
        await using var stack = await Stack.StartAsync(configure: settings => settings["Gateway:Chat:Enabled"] = "false");

        using var page = await stack.Client.GetAsync("/chat/");
        using var vue = await stack.Client.GetAsync("/chat/vendor/vue.global.prod.js");

        // The mock has no such paths: its 404, with none of the page's headers.
        Assert.Equal(404, (int)page.StatusCode);
        Assert.False(page.Headers.Contains("Content-Security-Policy"));
        Assert.Empty(await page.Content.ReadAsStringAsync());
        Assert.Equal(404, (int)vue.StatusCode);
    }

    [Fact]
    public async Task SameFileAgain_WithItsETag_304()
    {
        await using var stack = await Stack.StartAsync(configure: settings => settings["Gateway:Chat:Enabled"] = "true");
        using var first = await stack.Client.GetAsync("/chat/chat.js");
        using var again = new HttpRequestMessage(HttpMethod.Get, "/chat/chat.js");
        again.Headers.IfNoneMatch.Add(first.Headers.ETag!);

        using var second = await stack.Client.SendAsync(again);

        Assert.Equal(200, (int)first.StatusCode);
        Assert.Equal(304, (int)second.StatusCode);
    }

    [Fact]
    public void EnabledNotABoolean_StopsAtStartNamingTheKey()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Chat:Enabled"] = "sometimes";

        var error = Record.Exception(() => GatewayHost.Build(settings));

        Assert.NotNull(error);
        Assert.Contains("Gateway:Chat:Enabled", error.ToString(), StringComparison.Ordinal);
    }
}
