using Gateway.Sessions;

using Gateway.Telemetry;
namespace Gateway.Streams;

/// <summary>
/// <c>SessionStreams.Debounce</c>: a keyed request holds its lease for the window before it goes upstream, so
/// that a newer request with the same key inside the window supersedes it (on this replica or, through the
/// registry, another) before the model server sees it: neither its prompt nor its completion is processed.
/// The window is the only delay it adds: the claim is made first, the wait is on the lease's own token.
/// </summary>
internal static class DebounceWindow
{
    /// <summary>Waits out the window; returns <see cref="StreamOutcome.None"/> when the request may go upstream,
    /// else why not: the lease's reason (superseded, stopped, shutdown) or the client having gone away.</summary>
    public static async Task<StreamOutcome> WaitAsync(ISessionRegistry registry, Lease lease, TimeSpan window, bool held,
        TimeProvider time, CancellationToken clientAborted)
    {
        using (var either = CancellationTokenSource.CreateLinkedTokenSource(lease.Token, clientAborted))
        {
            try
            {
                await Task.Delay(window, time, either.Token);
            }
            catch (OperationCanceledException)
            {
                // Superseded, stopped, or the client left: told apart below.
            }
        }

        if (lease.Reason != StreamOutcome.None)
        {
            return lease.Reason;
        }

        if (clientAborted.IsCancellationRequested)
        {
            return StreamOutcome.ClientDisconnected;
        }

        // A reject route: from here on a newer request finds the session busy, unless it took the key first.
        if (held && !await registry.LeaveWindowAsync(lease))
        {
            lease.TryCancel(StreamOutcome.Superseded, time.GetTimestamp());
            return lease.Reason;
        }

        return StreamOutcome.None;
    }

    /// <summary>The prompt tokens a request would have cost, estimated as its body's bytes / 4 (rounded up):
    /// its <c>Content-Length</c>, or for a chunked upload the bytes received so far. JSON structure counts too,
    /// so for short prompts this is high; it never reads the body (the request is refused unread).</summary>
    public static long PromptTokens(HttpRequest request)
    {
        var bytes = request.ContentLength ?? 0;
        if (request.ContentLength is null && request.BodyReader.TryRead(out var read))
        {
            bytes = read.Buffer.Length;
            request.BodyReader.AdvanceTo(read.Buffer.Start); // consume nothing
        }

        return (bytes + 3) / 4;
    }
}
