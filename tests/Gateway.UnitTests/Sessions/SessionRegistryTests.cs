using Gateway.Sessions;

using Gateway.Telemetry;
namespace Gateway.Tests.Sessions;

public sealed class SessionRegistryTests
{
    private static readonly SessionKey Key = SessionKey.Create("llm", "Bearer t", "s");

    [Fact]
    public void Claim_SecondClaimSameKey_FirstCancelledAsSuperseded()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var first = registry.Claim(Key);
        var second = registry.Claim(Key);

        Assert.True(first.Token.IsCancellationRequested);
        Assert.Equal(StreamOutcome.Superseded, first.Reason);
        Assert.False(second.Token.IsCancellationRequested);
        Assert.Same(second, registry.Find(Key));
    }

    [Fact]
    public void Release_BySupersededLease_LeavesNewOwnerInPlace()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var first = registry.Claim(Key);
        var second = registry.Claim(Key);

        registry.Release(first);

        Assert.Same(second, registry.Find(Key));
        registry.Release(second);
        Assert.Equal(0, registry.Count);
    }

    [Fact]
    public void Claim_SameSessionIdDifferentCredentialOrRoute_Independent()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var a = registry.Claim(SessionKey.Create("llm", "Bearer a", "s"));
        var b = registry.Claim(SessionKey.Create("llm", "Bearer b", "s"));
        var c = registry.Claim(SessionKey.Create("other", "Bearer a", "s"));

        Assert.False(a.Token.IsCancellationRequested);
        Assert.False(b.Token.IsCancellationRequested);
        Assert.False(c.Token.IsCancellationRequested);
        Assert.Equal(3, registry.Count);
    }

    [Fact]
    public async Task ConcurrentClaims_ExactlyOneSurvivor_TheInstalledOwner()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        using var go = new ManualResetEventSlim();
        var claims = Enumerable.Range(0, 64).Select(_ => Task.Run(() =>
        {
            go.Wait();
            return registry.Claim(Key);
        })).ToArray();
        go.Set();
        var leases = await Task.WhenAll(claims);

        var alive = Assert.Single(leases, l => !l.Token.IsCancellationRequested);
        Assert.Same(alive, registry.Find(Key));
        Assert.All(leases.Where(l => l != alive), l => Assert.Equal(StreamOutcome.Superseded, l.Reason));

        foreach (var lease in leases)
        {
            registry.Release(lease);
        }

        Assert.Equal(0, registry.Count);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await registry.WhenEmptyAsync(timeout.Token);
    }

    [Fact]
    public async Task WhenEmptyAsync_CompletesOnLastRelease()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var lease = registry.Claim(Key);
        var emptied = registry.WhenEmptyAsync(CancellationToken.None);
        Assert.False(emptied.IsCompleted);

        registry.Release(lease);

        await emptied.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task ClaimAsync_ReplacingALease_CompletesOnlyOnceTheReplacedOneIsReleased()
    {
        // The replaced stream releases its lease once its upstream request has ended: until then the newer
        // one must not go upstream, so one session never holds two upstream requests (or two slots' worth).
        ISessionRegistry registry = new SessionRegistry(TimeProvider.System);
        var first = await registry.ClaimAsync(Key);
        var second = registry.ClaimAsync(Key).AsTask();
        Assert.Equal(StreamOutcome.Superseded, first.Reason);
        Assert.False(second.IsCompleted);

        registry.Release(first);

        var lease = await second.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Same(lease, registry.Find(Key));
        Assert.True((await registry.ClaimAsync(SessionKey.Create("llm", "Bearer t", "other"))) is { Reason: StreamOutcome.None });
    }

    [Fact]
    public void TryCancel_Twice_FirstReasonWins()
    {
        var lease = new Lease(Key, 1, 0);
        Assert.True(lease.TryCancel(StreamOutcome.Stopped, 10));
        Assert.False(lease.TryCancel(StreamOutcome.Superseded, 20));
        Assert.Equal(StreamOutcome.Stopped, lease.Reason);
        Assert.Equal(10, lease.CancelledAt);
    }

    [Fact]
    public void SessionKey_NeverContainsTheCredential()
    {
        var key = SessionKey.Create("llm", "Bearer sk-secret-value", "s");
        Assert.DoesNotContain("sk-secret-value", key.Value);
        Assert.Matches("^[0-9a-f]{12}$", key.Fingerprint());
    }
}
