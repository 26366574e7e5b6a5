namespace Gateway.Streams;

/// <summary>
/// Every stream on a session-streams route, keyed or not, while it runs: one count the drain waits on,
/// and one token shared by all of them that the drain deadline cancels (each stream's
/// <see cref="AbortGuard"/> links it in as it does a lease's). A keyless stream has no lease to
/// carry a reason, so its reason is this signal's: <see cref="Requested"/> means shutdown.
/// </summary>
internal sealed class ShutdownSignal(TimeProvider time)
{
    // Never disposed: it has no timer, and a stream may still link to its token while the host is disposed.
    private readonly CancellationTokenSource _deadline = new();
    private readonly TaskCompletionSource _idle = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _active;
    private int _draining;
    private long _cancelledAt;

    /// <summary>Fires at the drain deadline.</summary>
    public CancellationToken Token => _deadline.Token;

    /// <summary>True once the drain deadline cancelled the remaining streams.</summary>
    public bool Requested => _deadline.IsCancellationRequested;

    /// <summary><see cref="TimeProvider.GetTimestamp"/> of the deadline's cancel; 0 before it.</summary>
    public long CancelledAt => Volatile.Read(ref _cancelledAt);

    /// <summary>Streams running now.</summary>
    public int Active => Volatile.Read(ref _active);

    /// <summary>Counts a stream until the returned scope is disposed.</summary>
    public Scope Enter()
    {
        Interlocked.Increment(ref _active);
        return new Scope(this);
    }

    /// <summary>Completes when no stream runs (at once if none does); from then on it stays complete.</summary>
    public Task WhenIdleAsync(CancellationToken cancellationToken)
    {
        // Both sides write, then read the other's field, each with a full fence: either the last
        // Leave sees the drain, or the drain sees the count at 0.
        Interlocked.Exchange(ref _draining, 1);
        if (Volatile.Read(ref _active) == 0)
        {
            _idle.TrySetResult();
        }

        return _idle.Task.WaitAsync(cancellationToken);
    }

    /// <summary>The drain deadline: every stream still running ends with the shutdown notice.</summary>
    public void Cancel()
    {
        Interlocked.CompareExchange(ref _cancelledAt, time.GetTimestamp(), 0);
        _deadline.Cancel();
    }

    private void Leave()
    {
        if (Interlocked.Decrement(ref _active) == 0 && Volatile.Read(ref _draining) == 1)
        {
            _idle.TrySetResult();
        }
    }

    /// <summary>One stream's registration; a struct, so counting costs no allocation.</summary>
    public readonly struct Scope(ShutdownSignal signal) : IDisposable
    {
        public void Dispose() => signal.Leave();
    }
}
