using Gateway.Sessions;

using Gateway.Telemetry;
namespace Gateway.Tests.Sessions.Policies;

/// <summary>The in-process claim-if-idle: an active owner makes the key busy; a held owner (in its debounce window)
/// is replaced; of a held lease leaving its window and a claim taking it, exactly one wins.</summary>
public sealed class ClaimIfIdleTests
{
    private static readonly SessionKey Key = SessionKey.Create("llm", "Bearer t", "s");

    [Fact]
    public async Task ActiveOwner_ClaimIfIdle_IsBusy_AndTheOwnerRunsOn()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var owner = await registry.ClaimAsync(Key);

        Assert.Null(await registry.ClaimIfIdleAsync(Key));
        Assert.Equal(StreamOutcome.None, owner.Reason);
        Assert.Same(owner, registry.Find(Key));

        registry.Release(owner);
        Assert.NotNull(await registry.ClaimIfIdleAsync(Key));
    }

    [Fact]
    public async Task StoppedOwnerNotYetReleased_ClaimIfIdle_ReplacesIt()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var owner = await registry.ClaimAsync(Key);
        registry.Cancel(Key.TenantSession, StreamOutcome.Stopped);

        var claim = registry.ClaimIfIdleAsync(Key).AsTask();
        registry.Release(owner);

        Assert.NotNull(await claim.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(StreamOutcome.Stopped, owner.Reason); // its own reason, not overwritten
    }

    [Fact]
    public async Task HeldOwner_ClaimIfIdle_ReplacesIt_AndItMayNotLeaveItsWindow()
    {
        var registry = new SessionRegistry(TimeProvider.System);
        var held = (await registry.ClaimIfIdleAsync(Key, held: true))!;
        var claim = registry.ClaimIfIdleAsync(Key, held: true).AsTask();

        Assert.Equal(StreamOutcome.Superseded, held.Reason);
        Assert.False(await registry.LeaveWindowAsync(held));
        registry.Release(held);
        var newer = await claim.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(await registry.LeaveWindowAsync(newer!));
        Assert.Null(await registry.ClaimIfIdleAsync(Key)); // upstream now: busy
    }

    [Fact]
    public void LeaveWindowAndDisplace_Racing_ExactlyOneWins()
    {
        for (var round = 0; round < 2000; round++)
        {
            var registry = new SessionRegistry(TimeProvider.System);
            var held = registry.ClaimIfIdle(Key, null, held: true, out _)!;
            Lease? newer = null;
            var left = false;
            Parallel.Invoke(
                () => left = held.TryLeaveWindow(),
                () => newer = registry.ClaimIfIdle(Key, null, held: false, out _));

            Assert.True(left ^ newer is not null, $"round {round}: left {left}, newer {newer is not null}");
            Assert.Equal(left, held.Reason == StreamOutcome.None);
        }
    }
}
