using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Gateway.Protocols;
using Gateway.Sessions;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Resume;

/// <summary>
/// Answers a request with <c>Last-Event-ID</c> on a resumable route, without sending anything upstream: the events
/// of the key's stream after that id, then the live ones, each once; or, when that stream cannot be resumed, one
/// answer whatever the reason (unknown id, expired, superseded, another tenant's): <c>204</c> for a <c>GET</c> (an
/// <c>EventSource</c> then stops) and <c>409 resume_unavailable</c> in the API's shape for a <c>POST</c>.
/// </summary>
internal sealed class ResumeReplay(ResumeStore store, RedisResumeReader remote, GatewayMetrics metrics)
{
    public const string HeaderName = "Last-Event-ID";

    public static readonly EndNotice Unavailable = new(StatusCodes.Status409Conflict, "invalid_request_error", "resume_unavailable",
        "This stream cannot be resumed (its events are no longer kept, or it was stopped or superseded); send the request again without Last-Event-ID.",
        shared: true);

    public static readonly EndNotice MalformedId = new(StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_last_event_id",
        $"Last-Event-ID must be at most {ResumeIds.MaxLength} printable ASCII characters.", shared: true);

    /// <summary>The request's <c>Last-Event-ID</c>: null when absent or empty (a request like any other).</summary>
    public static string? LastEventId(HttpRequest request)
    {
        var values = request.Headers[HeaderName];
        return values.Count switch
        {
            0 => null,
            1 when string.IsNullOrEmpty(values[0]) => null,
            1 => values[0],
            _ => "\n", // sent twice: malformed
        };
    }

    /// <summary>Serves the resume of <paramref name="session"/>'s stream on <paramref name="routeId"/>.</summary>
    public async Task ServeAsync(HttpContext context, string routeId, SessionRequest session, string lastEventId, CancellationToken shutdown)
    {
        var adapter = session.Adapter;
        if (!ResumeIds.IsWellFormed(lastEventId))
        {
            metrics.ResumeOutcome(routeId, ResumeOutcomes.Rejected);
            await adapter.WriteErrorResponseAsync(context, MalformedId, context.RequestAborted);
            return;
        }

        if (session.Key.Error is { } keyError)
        {
            metrics.ResumeOutcome(routeId, ResumeOutcomes.Rejected);
            await adapter.WriteErrorResponseAsync(context,
                new EndNotice(StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_session_key", keyError), context.RequestAborted);
            return;
        }

        var resumer = new Resumer();
        var log = session.Key.Key is { } key ? store.Find(key) : null;
        var attach = AttachResult.Unavailable;
        var parsed = ResumeIds.TryParse(lastEventId, out var streamId, out var after);
        if (log is not null && parsed
            && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(streamId), Encoding.ASCII.GetBytes(log.StreamId)))
        {
            attach = log.Attach(resumer, after);
        }
        else if (parsed && store.Mirror is not null && session.Key.Key is { } here && (log is null || log.StreamId != streamId))
        {
            // Not this replica's stream: the owner's copy in Redis, if the id names one of this caller's.
            attach = await remote.ServeAsync(context, routeId, here, adapter, streamId, after, shutdown);
            if (attach == AttachResult.Attached)
            {
                return;
            }
        }

        if (attach != AttachResult.Attached)
        {
            var allDelivered = attach == AttachResult.AllDelivered;
            metrics.ResumeOutcome(routeId, allDelivered ? ResumeOutcomes.Finished : ResumeOutcomes.Unavailable);
            if (allDelivered || HttpMethods.IsGet(context.Request.Method))
            {
                context.Response.StatusCode = StatusCodes.Status204NoContent;
                return;
            }

            await adapter.WriteErrorResponseAsync(context, Unavailable, context.RequestAborted);
            return;
        }

        metrics.ResumeOutcome(routeId, ResumeOutcomes.Resumed);
        await StreamAsync(context, log!, resumer, after, shutdown);
    }

    private async Task StreamAsync(HttpContext context, ResumeLog log, Resumer resumer, long after, CancellationToken shutdown)
    {
        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = log.ContentType ?? "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, resumer.Superseded, shutdown);
        var body = response.Body;
        var batch = new List<byte[]>();
        var cursor = after;
        var checkedAt = Stopwatch.GetTimestamp();
        try
        {
            await response.StartAsync(stop.Token);
            while (true)
            {
                batch.Clear();
                var (state, changed, noticeSent, lost) = log.Read(cursor, batch);
                if (lost)
                {
                    await WriteNoticeAsync(body, log.Adapter, EndNotice.UpstreamReset, stop.Token); // its events were forgotten before it read them
                    return;
                }

                foreach (var e in batch)
                {
                    await body.WriteAsync(e, stop.Token);
                }

                cursor += batch.Count;
                if (batch.Count > 0)
                {
                    await body.FlushAsync(stop.Token);
                    log.Delivered(cursor);
                }

                if (state is LogState.Finished or LogState.Declined)
                {
                    return;
                }

                if (state == LogState.Aborted)
                {
                    if (!noticeSent)
                    {
                        await WriteNoticeAsync(body, log.Adapter, NoticeFor(log.Reason), stop.Token);
                    }

                    return;
                }

                if (store.Mirror is not { } mirror)
                {
                    await changed.WaitAsync(stop.Token);
                    continue;
                }

                // With Redis, a newer resume may land on another replica: its reader token replaces this one's.
                if (Stopwatch.GetElapsedTime(checkedAt) >= RedisResumeMirror.ReaderTtl / 3)
                {
                    checkedAt = Stopwatch.GetTimestamp();
                    if (!await mirror.StillReadHereAsync(log))
                    {
                        resumer.Supersede();
                        stop.Token.ThrowIfCancellationRequested();
                    }
                }

                try
                {
                    await changed.WaitAsync(RedisResumeMirror.ReaderTtl / 3, stop.Token);
                }
                catch (TimeoutException)
                {
                    // time to look at the reader token again
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            if (context.RequestAborted.IsCancellationRequested)
            {
                log.ResumerGone(resumer);
                return;
            }

            log.ResumerGone(resumer);
            await TryWriteNoticeAsync(body, log.Adapter, resumer.Superseded.IsCancellationRequested ? EndNotice.Superseded : EndNotice.Shutdown);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException)
        {
            log.ResumerGone(resumer);
        }
    }

    /// <summary>The notice a reader gets when the stream it follows was aborted for <paramref name="reason"/>.</summary>
    public static EndNotice NoticeFor(StreamOutcome reason) => NoticeFor(reason.ToLabel());

    public static EndNotice NoticeFor(string? reason) => reason switch
    {
        "superseded" => EndNotice.Superseded,
        "stopped" => EndNotice.Stopped,
        "shutdown" => EndNotice.Shutdown,
        _ => EndNotice.UpstreamReset,
    };

    public static async Task WriteNoticeAsync(Stream body, ApiAdapter adapter, EndNotice notice, CancellationToken cancellationToken)
    {
        if (adapter.StreamError(notice, Framing.Sse) is { } payload)
        {
            await body.WriteAsync(payload, cancellationToken);
            await body.FlushAsync(cancellationToken);
        }
    }

    public static async Task TryWriteNoticeAsync(Stream body, ApiAdapter adapter, EndNotice notice)
    {
        try
        {
            await WriteNoticeAsync(body, adapter, notice, CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // the client went away too
        }
    }
}
