using Gateway.Draining;
using Gateway.Protocols;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;
using Gateway.Tokens;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Streams;

/// <summary>
/// The proxy-pipeline step before YARP's forwarder: claims the session key, lets a newer claim or the
/// client's departure abort the upstream request, ends an interrupted response in its own API's shape,
/// and accounts for the tokens streamed and saved.
/// </summary>
internal sealed class SessionStreamStep(
    ISessionRegistry registry,
    SessionKeyResolver resolver,
    ModelLabels models,
    StreamAccounting accounting,
    TokenizerCounting tokenizer,
    GatewayMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ShutdownSignal shutdown,
    IOptions<SavingsOptions> savings,
    UsageRecords usage,
    ILogger<SessionStreamStep> logger)
{
    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        var policy = RouteSessionPolicy.For(route);
        if (!policy.Enabled)
        {
            await ProxyUntrackedAsync(context, route.RouteId, next);
            return;
        }

        // Counted until its notice is written: the shutdown drain waits for every stream, keyed or not.
        using var running = shutdown.Enter();
        var startedAt = time.GetTimestamp();
        var session = context.Features.Get<SessionRequest>()
            ?? await SessionResolution.ResolveAsync(context, route.RouteId, policy, resolver, time);
        var adapter = session.Adapter;
        if (session.Key.Error is { } keyError)
        {
            SessionStreamLog.InvalidSessionKey(logger, route.RouteId, keyError);
            metrics.Rejected(route.RouteId, models.For(session.Facts.Model), adapter.Label);
            await adapter.WriteErrorResponseAsync(context,
                new EndNotice(StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_session_key", keyError), context.RequestAborted);
            usage.Ended(route.RouteId, adapter.Label, StreamOutcome.Rejected, Who(context, null, session.Facts.Model, startedAt));
            return;
        }

        var originalBody = context.Request.Body;
        var usageRequest = policy.IncludeUsage && adapter.Api is Api.ChatCompletions or Api.Completions
            ? IncludeUsage.Wrap(context.Request)
            : null;

        var (admitted, lease) = await AdmitAsync(context, route.RouteId, policy, session, startedAt);
        if (!admitted)
        {
            return;
        }

        // Known APIs are accounted for; anything else only when it belongs to a session.
        var accounted = lease is not null || adapter.Api != Api.Other;
        var active = accounted ? new ActiveStream(metrics, route.RouteId, adapter.Label) : null;
        var body = ReadFactsAsForwarded(context, session, active);

        using var activity = GatewayActivity.Source.StartActivity("session_stream");
        var responseBody = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        using var tap = new ResponseTap(responseBody, context.Response, time, keepText: tokenizer.Enabled, countTokens: accounted, adapter)
        {
            UsageRequest = usageRequest,
        };
        context.Features.Set<IHttpResponseBodyFeature>(tap);
        context.Features.Get<StreamTokens>()?.Attach(tap);
        var drain = policy.CancelPolicy == CancelPolicy.Drain
            ? new DrainContext(accounting, lifetime.ApplicationStopping, savings.Value.MaxDrainTime) { Tap = tap, Adapter = adapter }
            : null;
        context.Features.Set(drain);
        lease?.Describe(route.RouteId, models.For(session.Facts.Model), () => tap.Counter?.Tokens ?? 0);
        var guard = AbortGuard.Install(context, lease?.Token ?? default, shutdown.Token, time);
        StreamOutcome outcome;
        long upstreamClosedAt;
        try
        {
            try
            {
                await next(context);
            }
            finally
            {
                upstreamClosedAt = time.GetTimestamp();
                guard.Dispose();
                if (lease is not null)
                {
                    registry.Release(lease);
                }

                body?.Restore(context);
                context.Request.Body = originalBody;
            }

            outcome = await EndAsync(context, route.RouteId, adapter, guard, tap, lease);
        }
        finally
        {
            context.Features.Set(responseBody);
            tap.DropHeld();
        }

        var model = Record(context, route.RouteId, session, lease, active, body, tap, drain, guard, outcome, startedAt, upstreamClosedAt);
        activity?.SetTag("llm_gateway.route", route.RouteId);
        activity?.SetTag("llm_gateway.api", adapter.Label);
        activity?.SetTag("llm_gateway.outcome", outcome.ToLabel());
        activity?.SetTag("gen_ai.request.model", model);
    }

    /// <summary>A route without session streams: proxied as plain YARP does; its body is not read, so its usage record
    /// carries no tokens and no model, only who, the outcome and the time.</summary>
    private async Task ProxyUntrackedAsync(HttpContext context, string routeId, RequestDelegate next)
    {
        if (!usage.On)
        {
            await next(context);
            return;
        }

        var startedAt = time.GetTimestamp();
        await next(context);
        var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
        var outcome = error switch
        {
            ForwarderError.None => context.Response.StatusCode >= 400 ? StreamOutcome.UpstreamError : StreamOutcome.Completed,
            ForwarderError.RequestTimedOut => StreamOutcome.Timeout,
            ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled
                or ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient => StreamOutcome.ClientDisconnected,
            _ => StreamOutcome.UpstreamError,
        };
        usage.Ended(routeId, ApiAdapters.For(context.Request).Label, outcome, Who(context, null, null, startedAt));
    }

    /// <summary>
    /// Claims the request's session key, if it has one, and holds it for the route's debounce window. False
    /// when the request was answered here and must not go upstream: its session is busy (<c>OnNewer: reject</c>),
    /// a newer request arrived before it (a slow upload), or it was replaced, stopped or left during its window.
    /// </summary>
    private async Task<(bool Admitted, Lease? Lease)> AdmitAsync(HttpContext context, string routeId, RouteSessionPolicy policy,
        SessionRequest session, long startedAt)
    {
        if (session.Key.Key is not { } key)
        {
            return (true, null);
        }

        // A reject route claims only while no stream of the key is active; a lease in its debounce window
        // does not count as active (it is replaced), so it is claimed as held.
        var lease = policy.OnNewer == OnNewer.Reject
            ? await registry.ClaimIfIdleAsync(key, session.ArrivedAt, held: policy.Debounce > TimeSpan.Zero)
            : await registry.ClaimAsync(key, session.ArrivedAt);
        if (lease is null)
        {
            await RefuseBusyAsync(context, routeId, session, key, startedAt);
            return (false, null);
        }

        if (lease.Token.IsCancellationRequested)
        {
            // An older request whose key was read after a newer one's (a slow upload): the newer one keeps
            // the session, and this one never reaches the model server.
            await RefuseAsync(context, routeId, session, lease, startedAt, lease.Reason);
            return (false, lease);
        }

        if (policy.Debounce > TimeSpan.Zero)
        {
            var held = await DebounceWindow.WaitAsync(registry, lease, policy.Debounce, policy.OnNewer == OnNewer.Reject, time, context.RequestAborted);
            if (held != StreamOutcome.None)
            {
                if (held == StreamOutcome.Superseded)
                {
                    metrics.Debounced(routeId, models.For(session.Facts.Model), session.Adapter.Label, DebounceWindow.PromptTokens(context.Request));
                }

                await RefuseAsync(context, routeId, session, lease, startedAt, held);
                return (false, lease);
            }
        }

        return (true, lease);
    }

    /// <summary>Logs the stream's end and hands its figures to the accounting (at once, or once a drained upstream
    /// has been read to its end); returns the model label it was recorded under.</summary>
    private string Record(HttpContext context, string routeId, SessionRequest session, Lease? lease, ActiveStream? active,
        BodyFacts? body, ResponseTap tap, DrainContext? drain, AbortGuard guard, StreamOutcome outcome, long startedAt, long upstreamClosedAt)
    {
        var facts = body?.Final ?? session.Facts;
        var model = models.For(facts.Model ?? tap.Counter?.ResponseModel);
        var draining = drain?.Began == true;
        if (!draining)
        {
            tap.Counter?.Complete();
            drain?.Dispose();
        }

        if (lease is not null)
        {
            SessionStreamLog.StreamEnded(logger, routeId, lease.Key.Fingerprint(), outcome.ToLabel());
        }

        if (active is not null)
        {
            active.Start(models.For(facts.Model)); // when the body never ended, so that End can pair with it
            active.End();
            var end = new StreamEnd(
                routeId,
                model,
                session.Adapter.Operation,
                outcome,
                facts,
                tap.Counter,
                tap.FirstWriteAt == 0 ? null : time.GetElapsedTime(startedAt, tap.FirstWriteAt).TotalSeconds,
                CancelLatency(outcome, guard, lease, upstreamClosedAt),
                Drained: false,
                lease?.Key.TenantSession)
            {
                Api = session.Adapter.Label,
                Who = Who(context, lease?.Key, facts.Model ?? tap.Counter?.ResponseModel, startedAt),
                ErrorClass = outcome != StreamOutcome.UpstreamError ? null
                    : context.Response.StatusCode >= 500 ? "5xx"
                    : context.Response.StatusCode >= 400 ? "4xx"
                    : "cut",
            };
            if (draining)
            {
                drain!.RequestEnded(end); // recorded when the upstream has been read to its end
            }
            else
            {
                accounting.Record(end);
            }
        }
        else
        {
            tap.Counter?.Dispose();
            usage.Ended(routeId, session.Adapter.Label, outcome, Who(context, null, facts.Model, startedAt),
                tap.FirstWriteAt == 0 ? null : Math.Round(time.GetElapsedTime(startedAt, tap.FirstWriteAt).TotalMilliseconds, 1));
        }

        return model;
    }

    /// <summary>Answers a request whose lease ended before it went upstream (superseded, stopped, shutdown; or its
    /// client left during a debounce window) and records it as a stream that ended so, never upstream.</summary>
    private async Task RefuseAsync(HttpContext context, string routeId, SessionRequest session, Lease lease, long startedAt, StreamOutcome outcome)
    {
        registry.Release(lease);
        SessionStreamLog.StreamEnded(logger, routeId, lease.Key.Fingerprint(), outcome.ToLabel());
        if (Notices.For(outcome) is { } notice)
        {
            try
            {
                await session.Adapter.WriteErrorResponseAsync(context, notice, context.RequestAborted);
            }
            catch (Exception ex) when (ex is IOException or OperationCanceledException)
            {
                SessionStreamLog.CouldNotTellClient(logger, routeId, ex);
            }
        }

        var active = new ActiveStream(metrics, routeId, session.Adapter.Label);
        active.Start(models.For(session.Facts.Model));
        active.End();
        accounting.Record(new StreamEnd(routeId, models.For(session.Facts.Model), session.Adapter.Operation, outcome,
            session.Facts, null, null, time.GetElapsedTime(startedAt).TotalSeconds, Drained: false, lease.Key.TenantSession)
        {
            Api = session.Adapter.Label,
            Who = Who(context, lease.Key, session.Facts.Model, startedAt),
        });
    }

    /// <summary>A reject route's answer to a request whose session has an active stream: 409 <c>session_busy</c> in
    /// its API's shape; it never reaches the model server, and the active stream runs on.</summary>
    private async Task RefuseBusyAsync(HttpContext context, string routeId, SessionRequest session, SessionKey key, long startedAt)
    {
        SessionStreamLog.StreamEnded(logger, routeId, key.Fingerprint(), StreamOutcome.SessionBusy.ToLabel());
        metrics.SessionBusy(routeId, models.For(session.Facts.Model), session.Adapter.Label);
        try
        {
            await session.Adapter.WriteErrorResponseAsync(context, EndNotice.SessionBusy, context.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            SessionStreamLog.CouldNotTellClient(logger, routeId, ex);
        }

        usage.Ended(routeId, session.Adapter.Label, StreamOutcome.SessionBusy, Who(context, key, session.Facts.Model, startedAt));
    }

    /// <summary>The caller as the usage record names it, and the request's time so far.</summary>
    private UsageSubject Who(HttpContext context, SessionKey? key, string? model, long startedAt) =>
        UsageSubject.Of(resolver.CredentialHash(context), key?.Fingerprint(), model, time.GetElapsedTime(startedAt));

    /// <summary>Reads the request's facts from its whole body as the forwarder sends it, and counts the
    /// stream as active once the body has gone (its model is known then).</summary>
    private BodyFacts? ReadFactsAsForwarded(HttpContext context, SessionRequest session, ActiveStream? active)
    {
        if (active is null)
        {
            return null;
        }

        var request = context.Request;
        var fromPath = session.Adapter.FromPath(request.Path.Value ?? "", request.Query);
        if (!RequestBodyTap.IsJsonBody(request))
        {
            active.Start(models.For(session.Facts.Model));
            return null;
        }

        var scanner = new BodyScanner();
        var facts = new BodyFacts(request.Body, session.Adapter, scanner, fromPath, session.Facts);
        request.Body = new RequestBodyTap(request.Body, scanner, () => active.Start(models.For(facts.Final.Model)));
        return facts;
    }

    private double? CancelLatency(StreamOutcome outcome, AbortGuard guard, Lease? lease, long upstreamClosedAt)
    {
        var cancelledAt = outcome switch
        {
            StreamOutcome.ClientDisconnected => guard.ClientAbortedAt,
            StreamOutcome.Completed or StreamOutcome.UpstreamError => 0,
            StreamOutcome.Shutdown when lease?.CancelledAt is null or 0 => shutdown.CancelledAt,
            _ => lease?.CancelledAt ?? 0,
        };
        return cancelledAt == 0 ? null : Math.Max(0, time.GetElapsedTime(cancelledAt, upstreamClosedAt).TotalSeconds);
    }

    private async Task<StreamOutcome> EndAsync(HttpContext context, string routeId, ApiAdapter adapter, AbortGuard guard, ResponseTap tap, Lease? lease)
    {
        var errorFeature = context.Features.Get<IForwarderErrorFeature>();
        var error = errorFeature?.Error ?? ForwarderError.None;
        if (error == ForwarderError.None && !guard.AbortRequested)
        {
            return await EndedByUpstreamAsync(context, routeId, adapter, guard, tap);
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
            if (guard.ClientAborted)
            {
                guard.AbortClient();
            }
            else
            {
                await TellClientAsync(context, routeId, adapter, guard, tap, notice);
            }

            return reason;
        }

        // A route's request timeout fires through the client's token, so it is told apart before a client's leaving.
        if (RouteTimedOut(context) || (!guard.ClientAborted && TimedOut(error, errorFeature?.Exception)))
        {
            SessionStreamLog.UpstreamTimedOut(logger, routeId, error.ToString(), tap.BytesWritten);
            await TellClientAsync(context, routeId, adapter, guard, tap, EndNotice.UpstreamTimeout);
            return StreamOutcome.Timeout;
        }

        if (guard.ClientAborted || error is ForwarderError.ResponseBodyClient or ForwarderError.RequestBodyClient)
        {
            if (guard.AbortRequested)
            {
                guard.AbortClient();
            }

            return StreamOutcome.ClientDisconnected;
        }

        SessionStreamLog.UpstreamFailed(logger, routeId, error.ToString(), tap.BytesWritten);
        await TellClientAsync(context, routeId, adapter, guard, tap, Notices.For(error));
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
    private async Task<StreamOutcome> EndedByUpstreamAsync(HttpContext context, string routeId, ApiAdapter adapter, AbortGuard guard, ResponseTap tap)
    {
        tap.Counter?.Complete(); // the body ended: a last event without its final newline counts
        var cut = adapter.KnowsEnd
            && context.Response.StatusCode < 400
            && tap.Counter is { SawEnd: false, SawError: false }
            && tap.Framing is Framing.Sse or Framing.Ndjson;
        if (cut)
        {
            tap.DropHeld();
            SessionStreamLog.UpstreamEndedEarly(logger, routeId, adapter.Label, tap.BytesWritten);
            await TellClientAsync(context, routeId, adapter, guard, tap, EndNotice.UpstreamReset);
            return StreamOutcome.UpstreamError;
        }

        try
        {
            await tap.ReleaseHeldAsync(context.RequestAborted);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            SessionStreamLog.CouldNotTellClient(logger, routeId, ex);
        }

        return context.Response.StatusCode >= 400 || tap.Counter is { SawError: true } ? StreamOutcome.UpstreamError : StreamOutcome.Completed;
    }

    /// <summary>
    /// Before the response started: an error body in the API's shape with the notice's status. After:
    /// the API's terminal event and a clean end. A stream whose framing has no place for an event is
    /// aborted, since a truncated body must not look complete.
    /// </summary>
    private async Task TellClientAsync(HttpContext context, string routeId, ApiAdapter adapter, AbortGuard guard, ResponseTap tap, EndNotice notice)
    {
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
                guard.AbortClient();
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
            SessionStreamLog.CouldNotTellClient(logger, routeId, ex);
            guard.AbortClient();
        }
    }

    /// <summary>The request body's facts, read by its tap while the forwarder sends it.</summary>
    private sealed class BodyFacts(Stream original, ApiAdapter adapter, BodyScanner scanner, RequestFacts fromPath, RequestFacts early)
    {
        public void Restore(HttpContext context) => context.Request.Body = original;

        /// <summary>What the path says, then the whole body, then the bytes seen before forwarding.</summary>
        public RequestFacts Final => fromPath.Or(adapter.FromBody(scanner)).Or(early);
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
