using Gateway.Protocols;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;

namespace Gateway.Streams;

/// <summary>
/// Who gets in: a request with a malformed key is refused; a keyed one claims its session key (superseding the
/// stream that held it, or refused as busy on a reject route) and is held for the route's debounce window.
/// A request answered here never reaches the model server, and is recorded as such.
/// </summary>
internal sealed class StreamAdmission(
    ISessionRegistry registry,
    StreamRecording recording,
    GatewayMetrics metrics,
    ModelLabels models,
    TimeProvider time,
    ILogger<SessionStreamStep> logger)
{
    /// <summary>
    /// Claims the stream's session key, if it has one, and holds it for the route's debounce window. False when
    /// the request was answered here and must not go upstream: its key is malformed, its session is busy
    /// (<c>OnNewer: reject</c>), a newer request arrived before it (a slow upload), or it was replaced, stopped
    /// or left during its window.
    /// </summary>
    public async Task<bool> AdmitAsync(SessionStream stream)
    {
        var session = stream.Session;
        if (session.Key.Error is { } keyError)
        {
            await RefuseInvalidKeyAsync(stream, keyError);
            return false;
        }

        if (session.Key.Key is not { } key)
        {
            return true;
        }

        var policy = stream.Policy;
        // A reject route claims only while no stream of the key is active; a lease in its debounce window
        // does not count as active (it is replaced), so it is claimed as held.
        var lease = policy.OnNewer == OnNewer.Reject
            ? await registry.ClaimIfIdleAsync(key, session.ArrivedAt, held: policy.Debounce > TimeSpan.Zero)
            : await registry.ClaimAsync(key, session.ArrivedAt);
        if (lease is null)
        {
            await RefuseBusyAsync(stream, key);
            return false;
        }

        stream.Lease = lease;
        if (lease.Token.IsCancellationRequested)
        {
            // An older request whose key was read after a newer one's (a slow upload): the newer one keeps
            // the session, and this one never reaches the model server.
            await RefuseAsync(stream, lease.Reason);
            return false;
        }

        if (policy.Debounce > TimeSpan.Zero)
        {
            var held = await DebounceWindow.WaitAsync(registry, lease, policy.Debounce, policy.OnNewer == OnNewer.Reject, time, stream.Context.RequestAborted);
            if (held != StreamOutcome.None)
            {
                if (held == StreamOutcome.Superseded)
                {
                    metrics.Debounced(stream.RouteId, models.For(session.Facts.Model), stream.Adapter.Label, DebounceWindow.PromptTokens(stream.Context.Request));
                }

                await RefuseAsync(stream, held);
                return false;
            }
        }

        return true;
    }

    /// <summary>Gives the stream's key back; only its owner's lease is released.</summary>
    public void Release(SessionStream stream)
    {
        if (stream.Lease is { } lease)
        {
            registry.Release(lease);
        }
    }

    private async Task RefuseInvalidKeyAsync(SessionStream stream, string keyError)
    {
        SessionStreamLog.InvalidSessionKey(logger, stream.RouteId, keyError);
        metrics.Rejected(stream.RouteId, models.For(stream.Session.Facts.Model), stream.Adapter.Label);
        await stream.Adapter.WriteErrorResponseAsync(stream.Context,
            new EndNotice(StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_session_key", keyError), stream.Context.RequestAborted);
        recording.Refused(stream, StreamOutcome.Rejected);
    }

    /// <summary>Answers a request whose lease ended before it went upstream (superseded, stopped, shutdown; or its
    /// client left during a debounce window) and records it as a stream that ended so, never upstream.</summary>
    private async Task RefuseAsync(SessionStream stream, StreamOutcome outcome)
    {
        var lease = stream.Lease!;
        registry.Release(lease);
        SessionStreamLog.StreamEnded(logger, stream.RouteId, lease.Key.Fingerprint(), outcome.ToLabel());
        if (Notices.For(outcome) is { } notice)
        {
            await TryTellAsync(stream, notice);
        }

        recording.NeverUpstream(stream, outcome);
    }

    /// <summary>A reject route's answer to a request whose session has an active stream: 409 <c>session_busy</c> in
    /// its API's shape; it never reaches the model server, and the active stream runs on.</summary>
    private async Task RefuseBusyAsync(SessionStream stream, SessionKey key)
    {
        SessionStreamLog.StreamEnded(logger, stream.RouteId, key.Fingerprint(), StreamOutcome.SessionBusy.ToLabel());
        metrics.SessionBusy(stream.RouteId, models.For(stream.Session.Facts.Model), stream.Adapter.Label);
        await TryTellAsync(stream, EndNotice.SessionBusy);
        recording.Refused(stream, StreamOutcome.SessionBusy, key);
    }

    private async Task TryTellAsync(SessionStream stream, EndNotice notice)
    {
        try
        {
            await stream.Adapter.WriteErrorResponseAsync(stream.Context, notice, stream.Context.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            SessionStreamLog.CouldNotTellClient(logger, stream.RouteId, ex);
        }
    }
}
