using System.Diagnostics;
using Gateway.Draining;
using Gateway.Errors;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;
using Gateway.Tokens;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Streams;

/// <summary>
/// The proxy-pipeline step before YARP's forwarder: claims the session key, lets a newer claim or the
/// client's departure abort the upstream request, ends an interrupted response in its own protocol,
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
    IOptions<SavingsOptions> savings,
    ILogger<SessionStreamStep> logger)
{
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        var policy = RouteSessionPolicy.For(route);
        if (!policy.Enabled)
        {
            await next();
            return;
        }

        var startedAt = time.GetTimestamp();
        var session = context.Features.Get<SessionRequest>()
            ?? await SessionResolution.ResolveAsync(context, route.RouteId, policy, resolver, registry);
        var facts = session.Facts;
        var resolved = session.Key;
        if (resolved.Error is not null)
        {
            SessionStreamLog.InvalidSessionKey(logger, route.RouteId, resolved.Error);
            await OpenAiError.WriteResponseAsync(context, StatusCodes.Status400BadRequest, resolved.Error,
                "invalid_request_error", "invalid_session_key", context.RequestAborted);
            return;
        }

        var lease = resolved.Key is { } key ? await registry.ClaimAsync(key) : null;
        var accounted = lease is not null || facts.Model is not null;
        var model = models.For(facts.Model);
        if (accounted)
        {
            metrics.StreamStarted(route.RouteId, model);
        }

        using var activity = GatewayActivity.Source.StartActivity("session_stream");
        var responseBody = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var tap = new ResponseTap(responseBody, context.Response, time, keepText: tokenizer.Enabled, countTokens: accounted);
        context.Features.Set<IHttpResponseBodyFeature>(tap);
        var drain = policy.CancelPolicy == CancelPolicy.Drain
            ? new DrainContext(accounting, lifetime.ApplicationStopping, savings.Value.MaxDrainTime) { Tap = tap }
            : null;
        context.Features.Set(drain);
        lease?.Describe(route.RouteId, model, () => tap.Counter?.Tokens ?? 0);
        var guard = AbortGuard.Install(context, lease?.Token ?? default, time);
        StreamOutcome outcome;
        long upstreamClosedAt;
        try
        {
            try
            {
                await next();
            }
            finally
            {
                upstreamClosedAt = time.GetTimestamp();
                guard.Dispose();
                if (lease is not null)
                {
                    registry.Release(lease);
                }
            }

            outcome = await EndAsync(context, route.RouteId, guard, tap, lease);
        }
        finally
        {
            context.Features.Set(responseBody);
        }

        var draining = drain?.Began == true;
        if (!draining)
        {
            tap.Counter?.Complete();
            drain?.Dispose();
        }

        if (lease is not null)
        {
            SessionStreamLog.StreamEnded(logger, route.RouteId, lease.Key.Fingerprint(), outcome.ToLabel());
        }

        if (accounted)
        {
            var cancelledAt = outcome switch
            {
                StreamOutcome.ClientDisconnected => guard.ClientAbortedAt,
                StreamOutcome.Completed or StreamOutcome.UpstreamError => 0,
                _ => lease?.CancelledAt ?? 0,
            };
            var end = new StreamEnd(
                route.RouteId,
                model,
                OperationName(context.Request.Path),
                outcome,
                facts,
                tap.Counter,
                tap.FirstWriteAt == 0 ? null : time.GetElapsedTime(startedAt, tap.FirstWriteAt).TotalSeconds,
                cancelledAt == 0 ? null : Math.Max(0, time.GetElapsedTime(cancelledAt, upstreamClosedAt).TotalSeconds),
                Drained: false,
                lease?.Key.TenantSession);
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
        }

        activity?.SetTag("llm_gateway.route", route.RouteId);
        activity?.SetTag("llm_gateway.outcome", outcome.ToLabel());
        activity?.SetTag("gen_ai.request.model", model);
    }

    /// <summary>The GenAI <c>gen_ai.operation.name</c> for a request path.</summary>
    private static string OperationName(PathString path) =>
        path.Value is { } p && (p.EndsWith("/completions", StringComparison.Ordinal) && !p.EndsWith("/chat/completions", StringComparison.Ordinal)
            || p.EndsWith("/api/generate", StringComparison.Ordinal))
            ? "text_completion"
            : "chat";

    private async Task<StreamOutcome> EndAsync(HttpContext context, string routeId, AbortGuard guard, ResponseTap tap, Lease? lease)
    {
        var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
        if (error == ForwarderError.None && !guard.AbortRequested)
        {
            return StreamOutcome.Completed;
        }

        var reason = lease?.Reason ?? CancelReason.None;
        if (EndNotice.For(reason) is { } notice)
        {
            if (guard.ClientAborted)
            {
                guard.AbortClient();
            }
            else
            {
                await TellClientAsync(context, routeId, guard, tap, notice);
            }

            return reason switch
            {
                CancelReason.Superseded => StreamOutcome.Superseded,
                CancelReason.Stopped => StreamOutcome.Stopped,
                _ => StreamOutcome.Shutdown,
            };
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
        await TellClientAsync(context, routeId, guard, tap, EndNotice.For(error));
        return StreamOutcome.UpstreamError;
    }

    /// <summary>
    /// Before the response started: a JSON error with the notice's status. After: the protocol's error
    /// event and a clean end. A stream whose framing is unknown is aborted, since a truncated body
    /// must not look complete.
    /// </summary>
    private async Task TellClientAsync(HttpContext context, string routeId, AbortGuard guard, ResponseTap tap, EndNotice notice)
    {
        var response = context.Response;
        var clientAborted = context.RequestAborted;
        try
        {
            if (!response.HasStarted)
            {
                response.Clear();
                response.StatusCode = notice.StatusCode;
                response.ContentType = "application/json";
                response.ContentLength = notice.Json.Length;
                await tap.WriteOwnAsync(notice.Json, clientAborted);
                return;
            }

            var (separator, payload) = StreamProtocols.FromContentType(response.ContentType) switch
            {
                StreamProtocol.Sse => (tap.AtSseEventBoundary ? default : "\n\n"u8.ToArray(), notice.Sse),
                StreamProtocol.Ndjson => (tap.AtLineBoundary ? default : "\n"u8.ToArray(), notice.Ndjson),
                _ => (default(byte[]), default(byte[])),
            };
            if (payload is null)
            {
                guard.AbortClient();
                return;
            }

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
}
