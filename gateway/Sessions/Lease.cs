namespace Gateway.Sessions;

/// <summary>
/// The registry's record that one request currently owns a session key. Cancelling it aborts the
/// owner's upstream request; only the owner releases it.
/// </summary>
internal sealed class Lease
{
    // Not disposed on purpose: a newer claim may cancel this lease while its owner is finishing,
    // and a CancellationTokenSource without a timer holds nothing that needs disposing.
    private readonly CancellationTokenSource _cts = new();
    private int _reason;
    private long _cancelledAt;
    private int _released;
    private TaskCompletionSource? _whenReleased; // made only when a newer claim waits for this lease

    public Lease(SessionKey key, long id, long startedAt)
    {
        Key = key;
        Id = id;
        StartedAt = startedAt;
    }

    public SessionKey Key { get; }

    /// <summary>The route and model label of the stream, for the admin listing.</summary>
    public string Route { get; private set; } = "";

    public string Model { get; private set; } = "";

    /// <summary>Completion tokens that passed so far.</summary>
    public long TokensSoFar => _tokens?.Invoke() ?? 0;

    private Func<long>? _tokens;

    public void Describe(string route, string model, Func<long> tokensSoFar)
    {
        Route = route;
        Model = model;
        _tokens = tokensSoFar;
    }

    /// <summary>Unique per process; the order in which claims were made.</summary>
    public long Id { get; }

    /// <summary><see cref="TimeProvider.GetTimestamp"/> when the lease was claimed.</summary>
    public long StartedAt { get; }

    public CancellationToken Token => _cts.Token;

    public CancelReason Reason => (CancelReason)Volatile.Read(ref _reason);

    /// <summary><see cref="TimeProvider.GetTimestamp"/> of the cancel decision; 0 while alive.</summary>
    public long CancelledAt => Volatile.Read(ref _cancelledAt);

    /// <summary>Completes once the owner has released the lease, that is once its upstream request has
    /// ended: what a claim that replaced it waits for before its own request goes upstream.</summary>
    public Task WhenReleased()
    {
        if (Volatile.Read(ref _released) == 1)
        {
            return Task.CompletedTask;
        }

        var signal = Volatile.Read(ref _whenReleased);
        if (signal is null)
        {
            var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            signal = Interlocked.CompareExchange(ref _whenReleased, created, null) ?? created;
        }

        // Looked at again after the signal is in place: a release in between completes it here.
        if (Volatile.Read(ref _released) == 1)
        {
            signal.TrySetResult();
        }

        return signal.Task;
    }

    /// <summary>Called by the registry when the owner releases the lease (superseded or not).</summary>
    internal void MarkReleased()
    {
        Interlocked.Exchange(ref _released, 1);
        Volatile.Read(ref _whenReleased)?.TrySetResult();
    }

    /// <summary>Cancels the lease once; later calls (any reason) return false and change nothing.</summary>
    public bool TryCancel(CancelReason reason, long timestamp)
    {
        if (reason == CancelReason.None || Interlocked.CompareExchange(ref _reason, (int)reason, 0) != 0)
        {
            return false;
        }

        Volatile.Write(ref _cancelledAt, timestamp);
        _cts.Cancel();
        return true;
    }
}
