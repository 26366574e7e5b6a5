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
    /// or another, is cancelled with <see cref="CancelReason.Superseded"/>. Never waits on the network.</summary>
    Lease Claim(SessionKey key);

    /// <summary>Gives up the lease if it still owns its key; a superseded lease changes nothing.</summary>
    void Release(Lease lease);

    /// <summary>This replica's current owner of <paramref name="key"/>, if any.</summary>
    Lease? Find(SessionKey key);

    /// <summary>The explicit stop: cancels one tenant's session on every route with
    /// <see cref="CancelReason.Stopped"/>; returns how many streams it ended (or told their replica to end).</summary>
    ValueTask<int> StopAsync(string tenantSession, CancellationToken cancellationToken);
}
