using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Gateway.Limits;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.MockLlm;
using Gateway.Tests.Protocols;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

using static Gateway.Tests.Limits.TokenBudgetRequests;

namespace Gateway.Tests.Limits;

/// <summary>
/// Per-tenant token budgets (<c>Gateway:RateLimits:TokensPerMinute</c>) on the real wire, the mock's ledger
/// telling what went upstream. The budgets' clock is a <see cref="FakeTimeProvider"/> the test moves: frozen,
/// nothing refills behind a test's back, so every Retry-After is exact; moved, the budget comes back.
/// </summary>
public sealed class TokenBudgetTests
{
    private const string Prompt = "x"; // one word: the mock reports 1 prompt token

    private static string NewRoute() => "tb" + Guid.NewGuid().ToString("N")[..8];

    private static async Task<(Stack Stack, FakeTimeProvider Clock)> StartAsync(string route, int tokensPerMinute,
        Action<Dictionary<string, string?>>? more = null)
    {
        var clock = new FakeTimeProvider();
        var stack = await Stack.StartAsync(configure: s =>
        {
            Budget(route, tokensPerMinute)(s);
            more?.Invoke(s);
        }, routeId: route, builder: b => b.Services.AddKeyedSingleton<TimeProvider>(TokenBudgets.ClockKey, clock));
        return (stack, clock);
    }

    private static HttpRequestMessage Request(ApiCase api, string session, string credential, int tokens, string prompt = Prompt)
    {
        var request = api.Request("mock-1", prompt, 1000, session, new Dictionary<string, string> { [MockApi.CompletionTokens] = tokens.ToString(CultureInfo.InvariantCulture) });
        request.Headers.Authorization = AuthenticationHeaderValue.Parse("Bearer " + credential);
        return request;
    }

    [Theory]
    [InlineData("chat_completions", false)]
    [InlineData("messages", true)] // message_start reports input_tokens
    [InlineData("responses", true)] // response.completed reports input_tokens
    public async Task BudgetSpent_NextRequest429TokenLimitExceeded_InItsApisShape_NeverUpstream_OtherTenantServed(string apiName, bool reportsPrompt)
    {
        var api = ApiCase.Named(apiName);
        var route = NewRoute();
        var (stack, _) = await StartAsync(route, tokensPerMinute: 10);
        await using var _stack = stack;

        Assert.Equal(200, await StatusAsync(stack.Client, Request(api, "spend", "alice", tokens: 12)));
        var spent = (await stack.WaitForEntryAsync("spend", e => e.EndedAt is not null)).TokensSent + (reportsPrompt ? MockApi.PromptTokens(Prompt) : 0);

        using var rejected = await stack.Client.SendAsync(Request(api, "over", "alice", tokens: 1));
        var other = await StatusAsync(stack.Client, Request(api, "other", "bob", tokens: 1));

        Assert.Equal(429, (int)rejected.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(RetryAfter(10, spent)), rejected.Headers.RetryAfter?.Delta);
        var error = JsonDocument.Parse(await rejected.Content.ReadAsStringAsync()).RootElement;
        if (apiName == "messages")
        {
            Assert.Equal("error", error.GetProperty("type").GetString());
            Assert.Contains("Token budget", error.GetProperty("error").GetProperty("message").GetString(), StringComparison.Ordinal);
        }
        else
        {
            Assert.Equal("token_limit_exceeded", error.GetProperty("error").GetProperty("code").GetString());
        }

        Assert.Equal(200, other);
        Assert.DoesNotContain(stack.Ledger.Snapshot(), e => e.SessionId == "over");
        var samples = await PromText.ParseAsync(stack.Client);
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_rate_limit_rejections_total", ("route", route), ("limit", "tokens")));
    }

    [Fact]
    public async Task StreamRunningWhenTheBudgetIsSpent_ChargedAsItRuns_NewRequestRefused_TheStreamRunsToItsEnd()
    {
        var route = NewRoute();
        var (stack, clock) = await StartAsync(route, tokensPerMinute: 10);
        await using var _stack = stack;
        var request = TokenBudgetRequests.Chat("long", "alice", tokens: 60);
        request.Headers.Add("X-Mock-Tokens-Per-Second", "40");
        using var response = await StreamReading.SendAsync(stack.Client, request);
        await using var body = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(body, Encoding.UTF8);

        // 15 tokens have reached the client, so the gateway has counted them: over the budget of 10.
        var text = new StringBuilder();
        var events = 0;
        while (events < 15 && await reader.ReadLineAsync() is { } line)
        {
            events += Append(text, line);
        }

        Assert.Equal(15, events);
        clock.Advance(TokenBudgets.ChargeInterval); // the running stream is charged what it has spent so far
        using var refused = await stack.Client.SendAsync(TokenBudgetRequests.Chat("next", "alice", tokens: 1));
        Assert.Equal(429, (int)refused.StatusCode);

        string? last = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            events += Append(text, line);
            last = line.StartsWith("data:", StringComparison.Ordinal) ? line : last;
        }

        Assert.Equal("data: [DONE]", last);
        Assert.Equal(MockApi.ExpectedText(Prompt, 60), text.ToString());
        var entry = await stack.WaitForEntryAsync("long", e => e.EndedAt is not null);
        Assert.True(entry.Completed);
        Assert.Equal(60, entry.TokensSent);
        Assert.DoesNotContain(stack.Ledger.Snapshot(), e => e.SessionId == "next");

        static int Append(StringBuilder text, string line)
        {
            if (!line.StartsWith("data: {", StringComparison.Ordinal))
            {
                return 0;
            }

            var choices = JsonDocument.Parse(line[6..]).RootElement.GetProperty("choices");
            if (choices.GetArrayLength() == 0 || !choices[0].GetProperty("delta").TryGetProperty("content", out var content))
            {
                return 0;
            }

            text.Append(content.GetString());
            return 1;
        }
    }

    [Fact]
    public async Task PromptTokensReportedInUsage_Charged_ChatWithIncludeUsage_MessagesStart()
    {
        // 20 prompt words and 5 completion tokens against a budget of 20: over only if the prompt counts.
        var prompt = string.Join(' ', Enumerable.Repeat("word", 20));
        Assert.Equal(20, MockApi.PromptTokens(prompt));
        var route = NewRoute();
        var (stack, _) = await StartAsync(route, tokensPerMinute: 20);
        await using var _stack = stack;

        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("usage", "alice", tokens: 5, prompt, includeUsage: true)));
        Assert.Equal(200, await StatusAsync(stack.Client, Request(ApiCase.Messages, "messages", "bob", tokens: 5, prompt)));
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("no-usage", "carol", tokens: 5, prompt)));

        using var alice = await stack.Client.SendAsync(TokenBudgetRequests.Chat("alice-2", "alice", tokens: 1));
        using var bob = await stack.Client.SendAsync(Request(ApiCase.Messages, "bob-2", "bob", tokens: 1));
        Assert.Equal(429, (int)alice.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(RetryAfter(20, 25)), alice.Headers.RetryAfter?.Delta);
        Assert.Equal(429, (int)bob.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(RetryAfter(20, 25)), bob.Headers.RetryAfter?.Delta);
        // Without a usage report only the completion is known: 5 of 20.
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("carol-2", "carol", tokens: 1)));
    }

    [Fact]
    public async Task Debt_PaidBackAtTheRate_RequestAdmittedWhenRetryAfterHasPassed_NotBefore()
    {
        var route = NewRoute();
        var (stack, clock) = await StartAsync(route, tokensPerMinute: 10);
        await using var _stack = stack;
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("spend", "alice", tokens: 12)));

        using var first = await stack.Client.SendAsync(TokenBudgetRequests.Chat("early", "alice", tokens: 1));
        Assert.Equal(429, (int)first.StatusCode);
        var wait = first.Headers.RetryAfter!.Delta!.Value;
        Assert.Equal(TimeSpan.FromSeconds(18), wait); // 12 of 10 spent: 3 tokens to win back at 1 per 6 s

        clock.Advance(wait - TimeSpan.FromSeconds(1));
        using var second = await stack.Client.SendAsync(TokenBudgetRequests.Chat("early", "alice", tokens: 1));
        Assert.Equal(429, (int)second.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), second.Headers.RetryAfter?.Delta);

        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("back", "alice", tokens: 1)));
        Assert.DoesNotContain(stack.Ledger.Snapshot(), e => e.SessionId == "early");

        // A minute later the whole budget is back: all of it, and no more.
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("again", "alice", tokens: 9)));
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("again-2", "alice", tokens: 1)));
        using var third = await stack.Client.SendAsync(TokenBudgetRequests.Chat("again-3", "alice", tokens: 1));
        Assert.Equal(429, (int)third.StatusCode);

        // A tenant whose budget is full again is forgotten: a flood of credentials costs bounded memory.
        var budgets = stack.Gateway.Services.GetRequiredService<TokenBudgets>();
        Assert.Equal(1, budgets.LocalCount);
        clock.Advance(TimeSpan.FromMinutes(2));
        Assert.True((await budgets.CheckAsync("someone")).Admitted);
        Assert.Equal(0, budgets.LocalCount);
    }

    [Theory]
    [InlineData(null, 200)] // the default, Unlimited: anonymous callers have no per-tenant limit, tokens included
    [InlineData("PerAddress", 429)]
    public async Task AnonymousCaller_FollowsTheAnonymousSetting(string? anonymous, int expected)
    {
        var route = NewRoute();
        var (stack, _) = await StartAsync(route, tokensPerMinute: 10, s => s["Gateway:RateLimits:Anonymous"] = anonymous);
        await using var _stack = stack;

        Assert.Equal(200, await StatusAsync(stack.Client, Anonymous("spend", tokens: 12)));
        Assert.Equal(expected, await StatusAsync(stack.Client, Anonymous("next", tokens: 1)));

        static HttpRequestMessage Anonymous(string session, int tokens)
        {
            var request = TokenBudgetRequests.Chat(session, "unused", tokens);
            request.Headers.Authorization = null;
            return request;
        }
    }

    [Fact]
    public async Task BudgetOff_ByDefault_NoTokenLimit()
    {
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: s => s[$"ReverseProxy:Routes:{route}:RateLimiterPolicy"] = "per-tenant", routeId: route);
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("a", "alice", tokens: 200)));
        Assert.Equal(200, await StatusAsync(stack.Client, TokenBudgetRequests.Chat("b", "alice", tokens: 1)));
        Assert.False(stack.Gateway.Services.GetRequiredService<TokenBudgets>().Enabled);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-5")]
    [InlineData("1000000001")]
    [InlineData("99999999999999999999")]
    [InlineData("lots")]
    [InlineData("1.5")]
    [InlineData("10,000")]
    public async Task BadTokensPerMinute_Start_FailsNamingTheKey(string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:RateLimits:TokensPerMinute"] = value;

        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var app = GatewayHost.Build(settings);
            await app.StartAsync();
            await app.StopAsync();
        });

        Assert.Contains("Gateway:RateLimits:TokensPerMinute", ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1")]
    [InlineData("1000000000")]
    public async Task BoundaryTokensPerMinute_Start_Succeeds(string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:RateLimits:TokensPerMinute"] = value;
        await using var app = GatewayHost.Build(settings);
        await app.StartAsync();
        Assert.True(app.Services.GetRequiredService<TokenBudgets>().Enabled);
        await app.StopAsync();
    }
}
