using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.MockLlm;

namespace Gateway.Tests.Limits;

/// <summary>The requests and settings of the token-budget tests, on one replica (functional) and across replicas (system).</summary>
internal static class TokenBudgetRequests
{
    private const string Prompt = "x"; // one word: the mock reports 1 prompt token

    internal static Action<Dictionary<string, string?>> Budget(string route, int tokensPerMinute) => s =>
    {
        s[$"ReverseProxy:Routes:{route}:RateLimiterPolicy"] = "per-tenant";
        s["Gateway:RateLimits:TokenLimit"] = "1000"; // the request rate is not what these tests are about
        s["Gateway:RateLimits:TokensPerPeriod"] = "1000";
        s["Gateway:RateLimits:TokensPerMinute"] = tokensPerMinute.ToString(CultureInfo.InvariantCulture);
    };

    internal static HttpRequestMessage Chat(string session, string credential, int tokens, string prompt = Prompt, bool includeUsage = false)
    {
        var body = new Dictionary<string, object>
        {
            ["model"] = "mock-1",
            ["stream"] = true,
            ["messages"] = new[] { new { role = "user", content = prompt } },
        };
        if (includeUsage)
        {
            body["stream_options"] = new { include_usage = true };
        }

        var request = MockApi.Post("/v1/chat/completions", JsonSerializer.Serialize(body), session, (MockApi.CompletionTokens, tokens.ToString(CultureInfo.InvariantCulture)));
        request.Headers.Authorization = AuthenticationHeaderValue.Parse("Bearer " + credential);
        return request;
    }

    internal static async Task<int> StatusAsync(HttpClient client, HttpRequestMessage request)
    {
        var transcript = await StreamReading.SendAndReadAsync(client, request);
        Assert.True(transcript.EndedCleanly, $"{request.RequestUri}: {transcript.ReadError}");
        return transcript.StatusCode;
    }

    /// <summary>The Retry-After a budget of <paramref name="perMinute"/> owes after <paramref name="spent"/>
    /// tokens on a frozen clock: seconds until one token is back.</summary>
    internal static int RetryAfter(int perMinute, int spent) => (int)Math.Ceiling((1.0 - (perMinute - spent)) * 60 / perMinute);
}
