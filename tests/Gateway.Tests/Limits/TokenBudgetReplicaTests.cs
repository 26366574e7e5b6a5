using Gateway.Limits;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Limits;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MockLlm;
using StackExchange.Redis;

namespace Gateway.Tests.Limits;

/// <summary>Token budgets shared by two replicas through a real redis-server, and what happens while it is down.</summary>
[Collection(RedisCollection.Name)]
public sealed class TokenBudgetReplicaTests
{
    private const string Route = "budget";

    [Fact]
    public async Task TwoReplicas_SpentOnA_RefusedOnB_OtherTenantServed_KeyHoldsNoCredential()
    {
        await using var setup = await Setup.StartAsync();

        Assert.Equal(200, await TokenBudgetTests.StatusAsync(setup.A, TokenBudgetTests.Chat("spend", "alice-secret-key", tokens: 12)));
        using var refused = await setup.B.SendAsync(TokenBudgetTests.Chat("over", "alice-secret-key", tokens: 1));
        Assert.Equal(429, (int)refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(TokenBudgetTests.RetryAfter(10, 12)), refused.Headers.RetryAfter?.Delta);
        Assert.Equal(200, await TokenBudgetTests.StatusAsync(setup.B, TokenBudgetTests.Chat("bob", "bob-key", tokens: 1)));
        Assert.DoesNotContain(setup.Mock.Ledger.Snapshot(), e => e.SessionId == "over");

        await using var redis = await ConnectionMultiplexer.ConnectAsync(setup.Redis.ConnectionString);
        var keys = redis.GetServer(redis.GetEndPoints()[0]).Keys(pattern: "llmgw:budget:*").Select(k => k.ToString()).ToList();
        Assert.Equal(2, keys.Count); // alice's and bob's
        Assert.All(keys, k => Assert.Matches("^llmgw:budget:[0-9a-f]{32}$", k));
        Assert.All(keys, k => Assert.True(redis.GetDatabase().KeyTimeToLive(k) <= TimeSpan.FromMinutes(2), "a budget key outlives its refill"));
    }

    [Fact]
    public async Task RedisDown_EachReplicaStillAppliesItsOwnBudget()
    {
        await using var setup = await Setup.StartAsync();
        await setup.Redis.KillAsync();
        await Setup.WaitAvailableAsync(setup.HostA, false);
        await Setup.WaitAvailableAsync(setup.HostB, false);

        Assert.Equal(200, await TokenBudgetTests.StatusAsync(setup.A, TokenBudgetTests.Chat("spend", "alice", tokens: 12)));
        using var refused = await setup.A.SendAsync(TokenBudgetTests.Chat("over", "alice", tokens: 1));
        Assert.Equal(429, (int)refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(TokenBudgetTests.RetryAfter(10, 12)), refused.Headers.RetryAfter?.Delta);
        // B cannot know what A spent while Redis is away: it applies its own budget (docs/token-budgets.md).
        Assert.Equal(200, await TokenBudgetTests.StatusAsync(setup.B, TokenBudgetTests.Chat("on-b", "alice", tokens: 1)));
        Assert.DoesNotContain(setup.Mock.Ledger.Snapshot(), e => e.SessionId == "over");
    }

    private sealed class Setup : IAsyncDisposable
    {
        public required RedisServer Redis { get; init; }
        public required MockLlmServer Mock { get; init; }
        public required GatewayHost HostA { get; init; }
        public required GatewayHost HostB { get; init; }
        public required HttpClient A { get; init; }
        public required HttpClient B { get; init; }

        public static async Task<Setup> StartAsync()
        {
            var redis = await RedisServer.StartAsync();
            var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 1000, TimeToFirstTokenMs = 0 });
            var clock = new FakeTimeProvider(); // one clock for both: the budget in Redis is worked out from the callers' time
            var a = await ReplicaAsync(mock.BaseAddress, redis.ConnectionString, clock);
            var b = await ReplicaAsync(mock.BaseAddress, redis.ConnectionString, clock);
            await WaitAvailableAsync(a, true);
            await WaitAvailableAsync(b, true);
            return new Setup { Redis = redis, Mock = mock, HostA = a, HostB = b, A = StreamReading.NewClient(a.BaseAddress), B = StreamReading.NewClient(b.BaseAddress) };
        }

        private static Task<GatewayHost> ReplicaAsync(Uri upstream, string redis, FakeTimeProvider clock) =>
            GatewayHost.StartAsync(upstream, s =>
            {
                TokenBudgetTests.Budget(Route, 10)(s);
                s["Gateway:Sessions:Redis"] = redis;
            }, b => b.Services.AddKeyedSingleton<TimeProvider>(TokenBudgets.ClockKey, clock), Route);

        public static async Task WaitAvailableAsync(GatewayHost host, bool available)
        {
            using var deadline = new CancellationTokenSource(Wait.Timeout);
            await ((RedisSessionRegistry)host.Services.GetRequiredService<ISessionRegistry>()).WaitForAvailabilityAsync(available, deadline.Token);
        }

        public async ValueTask DisposeAsync()
        {
            A.Dispose();
            B.Dispose();
            await HostA.DisposeAsync();
            await HostB.DisposeAsync();
            await Mock.DisposeAsync();
            await Redis.DisposeAsync();
        }
    }
}
