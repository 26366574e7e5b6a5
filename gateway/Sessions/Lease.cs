using Gateway.Telemetry;
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
    private int _window; // Window: whether the request waits in a debounce window that a newer claim may take over

    public Lease(SessionKey key, long id, long startedAt, bool held = false)
    {
        Key = key;
        Id = id;
        StartedAt = startedAt;
        _window = held ? (int)Window.Held : (int)Window.None;
    }

    private enum Window
    {
        /// <summary>Not held, or its window is over: its request is (or may be) upstream.</summary>
        None,
        /// <summary>Its request waits in a debounce window; a claim-if-idle may take the key from it.</summary>
        Held,
        /// <summary>A claim-if-idle took the key while it was held: it never goes upstream.</summary>
        Displaced,
    }

    /// <summary>True while the request waits in its debounce window (claimed with <c>held</c>).</summary>
    public bool Held => Volatile.Read(ref _window) == (int)Window.Held;

    /// <summary>Ends the debounce window: from now on a claim-if-idle finds the key busy. False when a newer
    /// claim took the key first, or the lease was cancelled: then the request must not go upstream.</summary>
    public bool TryLeaveWindow() =>
        Interlocked.CompareExchange(ref _window, (int)Window.None, (int)Window.Held) == (int)Window.Held && Reason == StreamOutcome.None;

    /// <summary>For a claim-if-idle: takes the key from a lease still in its window (true), or finds its request
    /// upstream (false). One of this and <see cref="TryLeaveWindow"/> wins, never both.</summary>
    internal bool TryDisplace() =>
        Interlocked.CompareExchange(ref _window, (int)Window.Displaced, (int)Window.Held) == (int)Window.Held;

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

    public StreamOutcome Reason => (StreamOutcome)Volatile.Read(ref _reason);

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
    public bool TryCancel(StreamOutcome reason, long timestamp)
    {
        if (reason == StreamOutcome.None || Interlocked.CompareExchange(ref _reason, (int)reason, 0) != 0)
        {
            return false;
        }

        Volatile.Write(ref _cancelledAt, timestamp);
        _cts.Cancel();
        return true;
    }
}
