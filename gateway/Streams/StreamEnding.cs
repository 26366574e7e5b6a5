using Gateway.Protocols;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http.Timeouts;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Streams;

/// <summary>
/// How a forwarded stream ended, told apart: the upstream's own end, a cut, a supersede, a stop, a shutdown
/// deadline, a timeout, the client's leaving, an upstream failure. Where the gateway or the upstream ended it,
/// the client is told in its own API's shape before its response ends (<see cref="EndNotice"/>); a client never
/// sees a torn event before that notice.
/// </summary>
internal sealed class StreamEnding(ShutdownSignal shutdown, ILogger<SessionStreamStep> logger)
{
    /// <summary>Tells how the stream ended, and tells its client when the gateway ended it or the upstream failed.</summary>
    public async Task<StreamOutcome> EndAsync(SessionStream stream)
    {
        var (context, tap, lease) = (stream.Context, stream.Tap, stream.Lease);
        var errorFeature = context.Features.Get<IForwarderErrorFeature>();
        var error = errorFeature?.Error ?? ForwarderError.None;
        if (error == ForwarderError.None && !stream.AbortRequested)
        {
            return await EndedByUpstreamAsync(stream);
        }

        tap.DropHeld(); // half an event must not reach the client before the notice
        // A keyless stream has no lease; the drain deadline is the only reason it can have.
        var reason = lease?.Reason ?? StreamOutcome.None;
        if (reason == StreamOutcome.None && shutdown.Requested)
        {
            reason = StreamOutcome.Shutdown;
        }
        if (Notices.For(reason) is { } notice)
        {
            if (stream.ClientAborted)
            {
                stream.AbortClient();
            }
            else
            {
                await TellClientAsync(stream, notice);
            }

            return reason;
        }

        // A route's request timeout fires through the client's token, so it is told apart before a client's leaving.
        if (RouteTimedOut(context) || (!stream.ClientAborted && TimedOut(error, errorFeature?.Exception)))
        {
            SessionStreamLog.UpstreamTimedOut(logger, stream.RouteId, error.ToString(), tap.BytesWritten);
            await TellClientAsync(stream, EndNotice.UpstreamTimeout);
            return StreamOutcome.Timeout;
        }

        if (stream.ClientAborted || error is ForwarderError.ResponseBodyClient or ForwarderError.RequestBodyClient)
        {
            if (stream.AbortRequested)
            {
                stream.AbortClient();
            }

            return StreamOutcome.ClientDisconnected;
        }

        SessionStreamLog.UpstreamFailed(logger, stream.RouteId, error.ToString(), tap.BytesWritten);
        await TellClientAsync(stream, Notices.For(error));
        return StreamOutcome.UpstreamError;
    }

    /// <summary>The cluster's activity timeout: YARP says so before the response (<c>RequestTimedOut</c>). Mid-body
    /// it reports the upstream read as failed, with a cancellation rather than a socket error: neither the client
    /// nor the gateway asked for one (both checked before), so the timeout did.</summary>
    private static bool TimedOut(ForwarderError error, Exception? exception) =>
        error == ForwarderError.RequestTimedOut
        || (error is ForwarderError.ResponseBodyDestination or ForwarderError.ResponseBodyCanceled && exception is OperationCanceledException);

    private static bool RouteTimedOut(HttpContext context) =>
        context.Features.Get<IHttpRequestTimeoutFeature>()?.RequestTimeoutToken.IsCancellationRequested == true;

    /// <summary>
    /// The forwarder finished without error. An error status is the upstream's answer, passed on as it
    /// is. A stream of a known API that ended without its end mark (and without an error of its own)
    /// was cut: its client is told so, since most SDKs would take it for a whole answer.
    /// </summary>
    private async Task<StreamOutcome> EndedByUpstreamAsync(SessionStream stream)
    {
        var (context, adapter, tap) = (stream.Context, stream.Adapter, stream.Tap);
        tap.Counter?.Complete(); // the body ended: a last event without its final newline counts
        var cut = adapter.KnowsEnd
            && context.Response.StatusCode < 400
            && tap.Counter is { SawEnd: false, SawError: false }
            && tap.Framing is Framing.Sse or Framing.Ndjson;
        if (cut)
        {
            tap.DropHeld();
            SessionStreamLog.UpstreamEndedEarly(logger, stream.RouteId, adapter.Label, tap.BytesWritten);
            await TellClientAsync(stream, EndNotice.UpstreamReset);
            return StreamOutcome.UpstreamError;
        }

        try
        {
            await tap.ReleaseHeldAsync(context.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            SessionStreamLog.CouldNotTellClient(logger, stream.RouteId, ex);
        }

        return context.Response.StatusCode >= 400 || tap.Counter is { SawError: true } ? StreamOutcome.UpstreamError : StreamOutcome.Completed;
    }

    /// <summary>
    /// Before the response started: an error body in the API's shape with the notice's status. After:
    /// the API's terminal event and a clean end. A stream whose framing has no place for an event is
    /// aborted, since a truncated body must not look complete.
    /// </summary>
    private async Task TellClientAsync(SessionStream stream, EndNotice notice)
    {
        var (context, adapter, tap) = (stream.Context, stream.Adapter, stream.Tap);
        var response = context.Response;
        // A route's request timeout cancelled the client's token, but the client is still there to be told.
        var clientAborted = RouteTimedOut(context) ? CancellationToken.None : context.RequestAborted;
        try
        {
            if (!response.HasStarted)
            {
                response.Clear();
                var json = adapter.ErrorBody(notice);
                response.StatusCode = notice.StatusCode;
                response.ContentType = "application/json";
                response.ContentLength = json.Length;
                await tap.WriteOwnAsync(json, clientAborted);
                return;
            }

            var framing = Framings.FromContentType(response.ContentType);
            if (adapter.StreamError(notice, framing) is not { } payload)
            {
                stream.AbortClient();
                return;
            }

            // Only where an event longer than the tap holds was passed on unfinished.
            var separator = framing == Framing.Sse
                ? tap.AtSseEventBoundary ? default : "\n\n"u8.ToArray()
                : tap.AtLineBoundary ? default : "\n"u8.ToArray();
            if (separator is not null)
            {
                await tap.WriteOwnAsync(separator, clientAborted);
            }

            await tap.WriteOwnAsync(payload, clientAborted);
            await tap.FlushAsync(clientAborted);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            SessionStreamLog.CouldNotTellClient(logger, stream.RouteId, ex);
            stream.AbortClient();
        }
    }
}

/// <summary>Which notice an early end gets.</summary>
internal static class Notices
{
    public static EndNotice? For(StreamOutcome outcome) => outcome switch
    {
        StreamOutcome.Superseded => EndNotice.Superseded,
        StreamOutcome.Stopped => EndNotice.Stopped,
        StreamOutcome.Shutdown => EndNotice.Shutdown,
        _ => null,
    };

    public static EndNotice For(ForwarderError error) => error switch
    {
        ForwarderError.Request or ForwarderError.RequestCreation => EndNotice.UpstreamUnavailable,
        ForwarderError.RequestTimedOut => EndNotice.UpstreamTimeout,
        ForwarderError.NoAvailableDestinations => EndNotice.NoUpstream,
        ForwarderError.ResponseHeaders => EndNotice.UpstreamBadResponse,
        _ => EndNotice.UpstreamReset,
    };
}
