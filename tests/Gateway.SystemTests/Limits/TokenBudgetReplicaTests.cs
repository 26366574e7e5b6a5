using Gateway.Limits;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MockLlm;
using StackExchange.Redis;

namespace Gateway.Tests.Limits;

/// <summary>Token budgets shared by two replicas through a real redis-server, and what happens while it is down.</summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class TokenBudgetReplicaTests
{
    private const string Route = "budget";

    [Theory]
    [InlineData(RedisKind.Single)]
    [InlineData(RedisKind.Cluster)]
    public async Task TwoReplicas_SpentOnA_RefusedOnB_OtherTenantServed_KeyHoldsNoCredential(RedisKind kind)
    {
        await using var setup = await StartAsync(kind);

        Assert.Equal(200, await TokenBudgetRequests.StatusAsync(setup.A.Client, TokenBudgetRequests.Chat("spend", "alice-secret-key", tokens: 12)));
        using var refused = await setup.B.Client.SendAsync(TokenBudgetRequests.Chat("over", "alice-secret-key", tokens: 1));
        Assert.Equal(429, (int)refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(TokenBudgetRequests.RetryAfter(10, 12)), refused.Headers.RetryAfter?.Delta);
        Assert.Equal(200, await TokenBudgetRequests.StatusAsync(setup.B.Client, TokenBudgetRequests.Chat("bob", "bob-key", tokens: 1)));
        Assert.DoesNotContain(setup.Mock.Ledger.Snapshot(), e => e.SessionId == "over");

        await using var redis = await ConnectionMultiplexer.ConnectAsync(setup.Target.ConnectionString);
        var keys = await setup.Target.KeysAsync("llmgw:budget:*");
        Assert.True(keys.Count == 2, string.Join(" ", keys)); // alice's and bob's
        Assert.All(keys, k => Assert.Matches("^llmgw:budget:[0-9a-f]{32}$", k));
        Assert.All(keys, k => Assert.True(redis.GetDatabase().KeyTimeToLive(k) <= TimeSpan.FromMinutes(2), "a budget key outlives its refill"));
    }

    [Fact]
    public async Task RedisDown_EachReplicaStillAppliesItsOwnBudget()
    {
        await using var setup = await StartAsync();
        await setup.Redis.KillAsync();
        await setup.A.WaitAvailableAsync(false);
        await setup.B.WaitAvailableAsync(false);

        Assert.Equal(200, await TokenBudgetRequests.StatusAsync(setup.A.Client, TokenBudgetRequests.Chat("spend", "alice", tokens: 12)));
        using var refused = await setup.A.Client.SendAsync(TokenBudgetRequests.Chat("over", "alice", tokens: 1));
        Assert.Equal(429, (int)refused.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(TokenBudgetRequests.RetryAfter(10, 12)), refused.Headers.RetryAfter?.Delta);
        // B cannot know what A spent while Redis is away: it applies its own budget (docs/token-budgets.md).
        Assert.Equal(200, await TokenBudgetRequests.StatusAsync(setup.B.Client, TokenBudgetRequests.Chat("on-b", "alice", tokens: 1)));
        Assert.DoesNotContain(setup.Mock.Ledger.Snapshot(), e => e.SessionId == "over");
    }

    private static Task<Replicas> StartAsync(RedisKind kind = RedisKind.Single)
    {
        var clock = new FakeTimeProvider(); // one clock for both: the budget in Redis is worked out from the callers' time
        return Replicas.StartAsync(mock: new MockLlmOptions { TokensPerSecond = 1000, TimeToFirstTokenMs = 0 }, routeId: Route,
            configure: TokenBudgetRequests.Budget(Route, 10), builder: b => b.Services.AddKeyedSingleton<TimeProvider>(TokenBudgets.ClockKey, clock), kind: kind);
    }
}
