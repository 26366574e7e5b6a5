using System.Collections.Concurrent;
using Gateway.Telemetry;

namespace Gateway.Sessions;

/// <summary>
/// Keeps one active lease per session key. A claim atomically replaces the current owner, so under
/// concurrent claims for one key exactly one lease (the last to be installed) survives.
/// </summary>
internal sealed class SessionRegistry(TimeProvider time) : ISessionRegistry
{
    /// <summary>The longest a claim waits for the stream it replaced to close its upstream request; that
    /// takes milliseconds, so only a stuck replaced stream makes it matter.</summary>
    public static readonly TimeSpan ReplacedWait = TimeSpan.FromSeconds(5);

    private readonly ConcurrentDictionary<SessionKey, Lease> _leases = new();
    private long _nextId;
    private TaskCompletionSource? _emptied;

    /// <summary>Number of keys that currently have an owner.</summary>
    public int Count => _leases.Count;

    /// <summary>Makes the caller the owner of <paramref name="key"/>; a previous owner is
    /// cancelled with <see cref="StreamOutcome.Superseded"/>.</summary>
    public Lease Claim(SessionKey key) => Claim(key, out _);

    /// <summary><see cref="Claim(SessionKey)"/>, also naming the lease it replaced, if any.</summary>
    public Lease Claim(SessionKey key, out Lease? replaced) => Claim(key, null, out replaced);

    /// <summary>Claims for a request that arrived at <paramref name="arrivedAt"/> (now when null). A lease for
    /// a request that arrived before the current owner's is returned already superseded, and changes nothing.</summary>
    public Lease Claim(SessionKey key, long? arrivedAt, out Lease? replaced) =>
        Install(key, arrivedAt, held: false, ifIdle: false, out replaced)!;

    /// <summary>
    /// Claims only while no stream of <paramref name="key"/> is active (<c>SessionStreams.OnNewer: reject</c>):
    /// returns null when the current owner is alive and not <see cref="Lease.Held"/>. A lease in its debounce
    /// window, or one already cancelled (stopped, superseded, ending), is replaced as <see cref="Claim(SessionKey)"/>
    /// would. <paramref name="held"/> makes the new lease one that waits in a debounce window.
    /// </summary>
    public Lease? ClaimIfIdle(SessionKey key, long? arrivedAt, bool held, out Lease? replaced) =>
        Install(key, arrivedAt, held, ifIdle: true, out replaced);

    private Lease? Install(SessionKey key, long? arrivedAt, bool held, bool ifIdle, out Lease? replaced)
    {
        var lease = new Lease(key, Interlocked.Increment(ref _nextId), arrivedAt ?? time.GetTimestamp(), held);
        while (true)
        {
            if (_leases.TryGetValue(key, out var current))
            {
                if (ifIdle && current.Reason == StreamOutcome.None && !current.Held)
                {
                    replaced = null;
                    return null;
                }

                if (current.StartedAt > lease.StartedAt)
                {
                    lease.TryCancel(StreamOutcome.Superseded, time.GetTimestamp());
                    replaced = null;
                    return lease;
                }

                // On a reject route a held lease is taken from its window before it could go upstream; if it
                // left the window first, look again.
                if ((!ifIdle || current.Reason != StreamOutcome.None || current.TryDisplace()) && _leases.TryUpdate(key, lease, current))
                {
                    current.TryCancel(StreamOutcome.Superseded, time.GetTimestamp());
                    replaced = current;
                    return lease;
                }
            }
            else if (_leases.TryAdd(key, lease))
            {
                replaced = null;
                return lease;
            }
        }
    }

    /// <summary><see cref="ClaimIfIdle"/>, completing once the lease it replaced (if any) is released.</summary>
    public ValueTask<Lease?> ClaimIfIdleAsync(SessionKey key, long? arrivedAt = null, bool held = false)
    {
        var lease = ClaimIfIdle(key, arrivedAt, held, out var replaced);
        return replaced is null ? new(lease) : AfterAsync(replaced, lease);

        async ValueTask<Lease?> AfterAsync(Lease replaced, Lease? lease)
        {
            await WhenEndedAsync(replaced);
            return lease;
        }
    }

    /// <summary>Ends a held lease's debounce window on this replica; see <see cref="Lease.TryLeaveWindow"/>.</summary>
    public ValueTask<bool> LeaveWindowAsync(Lease lease) => new(lease.TryLeaveWindow());

    /// <summary>Claims, and completes once the stream it replaced (if any) has closed its upstream
    /// request, so one session never has two upstream requests at once on this replica.</summary>
    public ValueTask<Lease> ClaimAsync(SessionKey key, long? arrivedAt = null)
    {
        var lease = Claim(key, arrivedAt, out var replaced);
        return replaced is null ? new(lease) : AfterAsync(replaced, lease);

        async ValueTask<Lease> AfterAsync(Lease replaced, Lease lease)
        {
            await WhenEndedAsync(replaced);
            return lease;
        }
    }

    /// <summary>Completes once <paramref name="replaced"/> is released, or after <see cref="ReplacedWait"/>.</summary>
    public async Task WhenEndedAsync(Lease replaced)
    {
        try
        {
            await replaced.WhenReleased().WaitAsync(ReplacedWait, time);
        }
        catch (TimeoutException)
        {
            // A replaced stream that does not end is no reason to hold the newer one back for ever.
        }
    }

    /// <summary>Removes the lease if it still owns its key; a superseded lease changes nothing.</summary>
    public void Release(Lease lease)
    {
        lease.MarkReleased();
        if (_leases.TryRemove(KeyValuePair.Create(lease.Key, lease)) && _leases.IsEmpty)
        {
            Interlocked.Exchange(ref _emptied, null)?.TrySetResult();
        }
    }

    /// <summary>Completes when no key has an owner (at once if none has): what a drain waits for.</summary>
    public async Task WhenEmptyAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            // Install the signal before looking, so a release between the look and the wait is not missed.
            var signal = Volatile.Read(ref _emptied);
            if (signal is null)
            {
                var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                signal = Interlocked.CompareExchange(ref _emptied, created, null) ?? created;
            }

            if (_leases.IsEmpty)
            {
                return;
            }

            await signal.Task.WaitAsync(cancellationToken);
        }
    }

    /// <summary>The current owner of <paramref name="key"/>, if any.</summary>
    public Lease? Find(SessionKey key) => _leases.TryGetValue(key, out var lease) ? lease : null;

    /// <summary>A point-in-time copy of the active leases.</summary>
    public IReadOnlyList<Lease> Snapshot() => [.. _leases.Values];

    /// <summary>The explicit stop on one replica: the streams of this process only.</summary>
    public ValueTask<int> StopAsync(string tenantSession, CancellationToken cancellationToken) =>
        ValueTask.FromResult(Cancel(tenantSession, StreamOutcome.Stopped));

    /// <summary>Cancels the active streams of one tenant's session on every route (an explicit stop);
    /// returns how many were cancelled. A scan: stops are rare next to claims.</summary>
    public int Cancel(string tenantSession, StreamOutcome reason)
    {
        var cancelled = 0;
        foreach (var lease in _leases.Values)
        {
            if (lease.Key.TenantSession == tenantSession && lease.TryCancel(reason, time.GetTimestamp()))
            {
                cancelled++;
            }
        }

        return cancelled;
    }

    /// <summary>Cancels the active stream with lease id <paramref name="id"/>, if any (admin).</summary>
    public bool Cancel(long id, StreamOutcome reason)
    {
        foreach (var lease in _leases.Values)
        {
            if (lease.Id == id)
            {
                return lease.TryCancel(reason, time.GetTimestamp());
            }
        }

        return false;
    }

    /// <summary>Cancels every active stream (shutdown after the drain deadline); returns how many.</summary>
    public int CancelAll(StreamOutcome reason)
    {
        var cancelled = 0;
        foreach (var lease in _leases.Values)
        {
            if (lease.TryCancel(reason, time.GetTimestamp()))
            {
                cancelled++;
            }
        }

        return cancelled;
    }
}
