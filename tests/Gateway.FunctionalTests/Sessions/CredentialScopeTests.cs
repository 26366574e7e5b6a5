using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions;

/// <summary>
/// One credential is one tenant however its header is spelled: the authentication scheme is
/// case-insensitive (RFC 9110 §11.1) and upstreams accept any spacing between it and the credential, so
/// <c>Bearer T</c>, <c>bearer T</c> and <c>Bearer  T</c> must scope sessions and limits as one tenant;
/// the credential itself stays case-sensitive.
/// </summary>
public sealed class CredentialScopeTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    /// <summary>A long stream sent with the credential header exactly as given (no client-side parsing).</summary>
    private static HttpRequestMessage Long(string sessionId, string header, string value) =>
        StreamReading.ChatRequest("/v1/chat/completions", "long", sessionId, maxTokens: 1000,
            headers: new Dictionary<string, string>(Slow) { [header] = value });

    private static HttpRequestMessage Stop(string sessionId, string header, string value)
    {
        var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
        stop.Headers.TryAddWithoutValidation(header, value);
        return stop;
    }

    /// <summary>The error type of the stream's last event, or the event itself when it is not an error.</summary>
    private static string? LastErrorType(StreamTranscript transcript) =>
        transcript.DataEvents[^1] is var last && last.StartsWith('{')
        && JsonDocument.Parse(last).RootElement.TryGetProperty("error", out var error)
            ? error.GetProperty("type").GetString()
            : last;

    [Fact]
    public async Task SchemeCaseAndSpacing_OneTenant_EachSpellingSupersedesTheLast_AndStopsIt()
    {
        await using var stack = await Stack.StartAsync();
        var spellings = new[] { "Bearer sk-T0ken", "bearer sk-T0ken", "Bearer  sk-T0ken", "BEARER \t sk-T0ken" };
        HttpResponseMessage? previous = null;
        for (var i = 0; i < spellings.Length; i++)
        {
            var response = await StreamReading.SendAsync(stack.Client, Long("one-chat", "Authorization", spellings[i]));
            Assert.Equal(200, (int)response.StatusCode);
            await stack.WaitForEntryAsync("one-chat", e => e.TokensSent >= 1, index: i);
            if (previous is not null)
            {
                Assert.Equal("request_superseded", LastErrorType(await StreamReading.ReadToEndAsync(previous)));
                previous.Dispose();
            }

            previous = response;
        }

        using (var stop = await stack.Client.SendAsync(Stop("one-chat", "Authorization", "bEaReR sk-T0ken")))
        {
            Assert.Equal(200, (int)stop.StatusCode);
        }

        Assert.Equal("request_stopped", LastErrorType(await StreamReading.ReadToEndAsync(previous!)));
        previous!.Dispose();
        var entries = await stack.Ledger.WaitForAsync(all => all.Count == spellings.Length && all.All(e => e.EndedAt is not null), Wait.Timeout);
        Assert.All(entries, e => Assert.True(e.Cancelled));
    }

    [Theory]
    [InlineData("Bearer T", true, "Bearer T")]
    [InlineData("bearer T", true, "Bearer T")]
    [InlineData("BEARER  \t T", true, "Bearer T")]
    [InlineData(" Basic dXNlcjpw ", true, "Basic dXNlcjpw")]
    [InlineData("Bearer t", true, "Bearer t")]
    [InlineData("Digest username=\"A\",  realm=\"r\"", true, "Digest username=\"A\",  realm=\"r\"")]
    [InlineData("SingleToken", true, "SingleToken")]
    [InlineData(" K3y ", false, "K3y")]
    [InlineData("key  With Spaces", false, "key  With Spaces")]
    public void NormalizeCredential_SchemeCaseAndGap_Merged_CredentialExact(string value, bool hasScheme, string expected) =>
        Assert.Equal(expected, Gateway.Sessions.SessionKeyResolver.NormalizeCredential(value, hasScheme));

    [Fact]
    public async Task CredentialItselfIsCaseSensitive_AnotherTenant_DoesNotSupersede()
    {
        await using var stack = await Stack.StartAsync();
        using var first = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "short", "chat", maxTokens: 20,
                headers: new Dictionary<string, string> { ["Authorization"] = "Bearer sk-T0ken", ["X-Mock-Tokens-Per-Second"] = "40" }));
        await stack.WaitForEntryAsync("chat", e => e.TokensSent >= 1);

        var other = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "x", "chat", maxTokens: 2,
                headers: new Dictionary<string, string> { ["Authorization"] = "Bearer sk-t0ken" }));

        Assert.Equal("[DONE]", other.DataEvents[^1]);
        Assert.Equal("[DONE]", (await StreamReading.ReadToEndAsync(first)).DataEvents[^1]);
    }

    [Fact]
    public async Task ApiKeyHeader_TrimmedAndExact_SurroundingSpaceIsTheSameKey_CaseIsNot()
    {
        await using var stack = await Stack.StartAsync(configure: s => s["Gateway:Sessions:CredentialHeader"] = "api-key");
        using var first = await StreamReading.SendAsync(stack.Client, Long("az", "api-key", "K3y-Value"));
        await stack.WaitForEntryAsync("az", e => e.TokensSent >= 1);

        // Kestrel already drops the spaces around a header value; a tab inside the field is the client's.
        using var spaced = await StreamReading.SendAsync(stack.Client, Long("az", "api-key", "\tK3y-Value\t"));
        Assert.Equal("request_superseded", LastErrorType(await StreamReading.ReadToEndAsync(first)));

        using var refused = await stack.Client.SendAsync(Stop("az", "api-key", "k3y-value"));
        Assert.Equal(404, (int)refused.StatusCode);
        using var stopped = await stack.Client.SendAsync(Stop("az", "api-key", "K3y-Value"));
        Assert.Equal(200, (int)stopped.StatusCode);
        Assert.Equal("request_stopped", LastErrorType(await StreamReading.ReadToEndAsync(spaced)));
    }

    [Fact]
    public async Task SpellingsOfOneCredential_ShareOneConcurrencyLimit()
    {
        const string route = "credential-limits";
        await using var stack = await Stack.StartAsync(configure: s =>
        {
            s[$"ReverseProxy:Routes:{route}:RateLimiterPolicy"] = "per-tenant";
            s["Gateway:RateLimits:MaxConcurrentStreams"] = "1";
        }, routeId: route);
        using var first = await StreamReading.SendAsync(stack.Client, Long("first", "Authorization", "Bearer sk-T0ken"));
        Assert.Equal(200, (int)first.StatusCode);

        using var second = await StreamReading.SendAsync(stack.Client, Long("second", "Authorization", "bearer  sk-T0ken"));

        Assert.Equal(429, (int)second.StatusCode);
        Assert.Single(stack.Ledger.Snapshot());
    }
}
