using Gateway.Limits;
using Gateway.Redis;
using Gateway.Sessions;
using Gateway.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics.Metrics;
using Gateway.Tokens;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Limits;

/// <summary>
/// The budgets' one timer for every running stream, tick by tick: each tenant is charged what its streams
/// spent since the last tick, once, whatever the number of running streams did between ticks (the tick
/// keeps its buffers from one tick to the next). Balances are read from a refusal's Retry-After: 60
/// tokens a minute refill one a second, so a balance of −b waits 1 + b seconds.
/// </summary>
public sealed class TokenBudgetTickTests
{
    private readonly FakeTimeProvider _clock = new();
    private readonly TokenBudgets _budgets;

    public TokenBudgetTickTests()
    {
        _budgets = new TokenBudgets(Options.Create(new RateLimitOptions { TokensPerMinute = 60 }),
            NoRedis(_clock), _clock, NullLogger<TokenBudgets>.Instance);
    }

    /// <summary>The shared Redis of a deployment without one: never connects, no database.</summary>
    private static SharedRedis NoRedis(TimeProvider clock)
    {
        var meters = new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>();
        return new SharedRedis(Options.Create(new RedisOptions()), new GatewayMetrics(meters), clock, NullLogger<SharedRedis>.Instance);
    }

    [Fact]
    public async Task Ticks_StreamsStartAndEndBetweenThem_EachTenantChargedWhatItSpentOnce()
    {
        var a1 = Start("tenant-a");
        var a2 = Start("tenant-a");
        var b = Start("tenant-b");
        a1.Spend(100);
        a2.Spend(50);
        b.Spend(90);

        _clock.Advance(TokenBudgets.ChargeInterval); // tick 1: both of a's streams as one amount
        Assert.Equal(-90, await BalanceAsync("tenant-a"));
        Assert.Equal(-30, await BalanceAsync("tenant-b"));

        a1.Spend(10);
        await a2.Charge.EndAsync(); // nothing spent since tick 1: nothing charged again
        _clock.Advance(TokenBudgets.ChargeInterval); // tick 2: one stream fewer; b spent nothing
        Assert.Equal(-90 + 1 - 10, await BalanceAsync("tenant-a"));
        Assert.Equal(-30 + 1, await BalanceAsync("tenant-b"));

        var many = Enumerable.Range(0, 40).Select(i => Start($"tenant-{i}")).ToArray(); // more than tick 1's buffer held
        foreach (var stream in many)
        {
            stream.Spend(70);
        }

        _clock.Advance(TokenBudgets.ChargeInterval); // tick 3
        for (var i = 0; i < many.Length; i++)
        {
            Assert.Equal(-10, await BalanceAsync($"tenant-{i}"));
        }

        Assert.Equal(-99 + 1, await BalanceAsync("tenant-a"));
        Assert.Equal(-29 + 1, await BalanceAsync("tenant-b"));

        foreach (var stream in many.Append(a1).Append(b))
        {
            await stream.Charge.EndAsync();
        }

        _clock.Advance(TokenBudgets.ChargeInterval); // tick 4: nothing running, nothing charged
        Assert.Equal(-98 + 1, await BalanceAsync("tenant-a"));
        Assert.Equal(-10 + 1, await BalanceAsync("tenant-0"));
    }

    private Stream Start(string tenant)
    {
        var counter = new Counter();
        var tokens = new StreamTokens();
        tokens.Attach(new Tap(counter));
        return new Stream(_budgets.StartCharging(tenant, tokens), counter);
    }

    /// <summary>The tenant's balance, read off the refusal's Retry-After (null when admitted).</summary>
    private async Task<double?> BalanceAsync(string tenant)
    {
        var decision = await _budgets.CheckAsync(tenant);
        return decision.Admitted ? null : Math.Round(1 - decision.RetryAfter.TotalSeconds, 3);
    }

    private sealed record Stream(TokenBudgets.Charge Charge, Counter Counter)
    {
        public void Spend(long tokens) => Counter.Add(tokens);
    }

    private sealed class Tap(TokenCounter counter) : ICountedStream
    {
        public TokenCounter? Counter => counter;
    }

    private sealed class Counter() : TokenCounter(null)
    {
        public void Add(long tokens) => ContentChunks += tokens;

        public override void Observe(ReadOnlySpan<byte> bytes)
        {
        }
    }
}
