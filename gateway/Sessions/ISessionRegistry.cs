using Gateway.Telemetry;
namespace Gateway.Sessions;

/// <summary>
/// Who owns a session key across the deployment. <see cref="SessionRegistry"/> is the in-process
/// implementation (one replica, or sticky routing); <see cref="Redis.RedisSessionRegistry"/> adds
/// cross-replica ordering through Redis on top of it. Views of this process's own streams (admin
/// listing, cancel by lease id, the shutdown drain) stay on <see cref="SessionRegistry"/>.
/// </summary>
internal interface ISessionRegistry
{
    /// <summary>Makes the caller the owner of <paramref name="key"/>; a previous owner, on this replica
    /// or another, is cancelled with <see cref="StreamOutcome.Superseded"/>. Completes once the claim has
    /// its place in the deployment's order, so a request that arrives after this stream began, on any
    /// replica, is the newer one: at once in-process; across replicas after one Redis round trip, or
    /// after the Redis timeout (then the claim is local only); and once the stream it replaced on this
    /// replica has closed its upstream request (at most <see cref="SessionRegistry.ReplacedWait"/>), so
    /// a session never has two upstream requests at once on one replica. Never faults.
    /// <para>Claims are ordered by when their requests arrived (<paramref name="arrivedAt"/>, a
    /// <see cref="TimeProvider.GetTimestamp"/>), not by when they are made: a request whose key was read
    /// after a newer one's (a slow upload before a body key) gets a lease that is already superseded,
    /// and the newer stream runs on. On one replica; across replicas claims are ordered in Redis.</para></summary>
    ValueTask<Lease> ClaimAsync(SessionKey key, long? arrivedAt = null);

    /// <summary>Claims only while no stream of <paramref name="key"/> is active, on this replica or (with Redis)
    /// another: null when one is, and the caller refuses its request (<c>SessionStreams.OnNewer: reject</c>). A lease
    /// still in its debounce window is no active stream: it is replaced, as <see cref="ClaimAsync"/> would.
    /// <paramref name="held"/> marks the new lease as waiting in a debounce window until <see cref="LeaveWindowAsync"/>.
    /// Otherwise as <see cref="ClaimAsync"/>.</summary>
    ValueTask<Lease?> ClaimIfIdleAsync(SessionKey key, long? arrivedAt = null, bool held = false);

    /// <summary>Ends the debounce window of a lease claimed with <c>held</c>: true when it still owns its key,
    /// and from now on a claim-if-idle finds the key busy; false when a newer claim took it (then the lease is
    /// cancelled, or will be, and its request must not go upstream).</summary>
    ValueTask<bool> LeaveWindowAsync(Lease lease);

    /// <summary>Gives up the lease if it still owns its key; a superseded lease changes nothing.</summary>
    void Release(Lease lease);

    /// <summary>This replica's current owner of <paramref name="key"/>, if any.</summary>
    Lease? Find(SessionKey key);

    /// <summary>The explicit stop: cancels one tenant's session on every route with
    /// <see cref="StreamOutcome.Stopped"/>; returns how many streams it ended (or told their replica to end).</summary>
    ValueTask<int> StopAsync(string tenantSession, CancellationToken cancellationToken);
}
