using Gateway.Protocols;
using Gateway.Resume;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http.Features;
using Gateway.Sessions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace Gateway.Streams;

/// <summary>
/// The proxy-pipeline step before YARP's forwarder, in the order a stream meets it: admission claims the session
/// key (<see cref="StreamAdmission"/>), the stream is opened (its taps and its abort guard: <see cref="StreamOpening"/>), the forwarder
/// runs, the ending tells how it ended and tells the client (<see cref="StreamEnding"/>), and the recording
/// accounts for the tokens streamed and saved (<see cref="StreamRecording"/>). What a stream carries from one to
/// the next is its <see cref="SessionStream"/>.
/// </summary>
internal sealed class SessionStreamStep(
    StreamAdmission admission,
    StreamOpening opening,
    StreamEnding ending,
    StreamRecording recording,
    ResumeReplay replay,
    ShutdownSignal shutdown,
    TimeProvider time)
{
    /// <summary>A route without session streams goes straight on, without a state machine of this step's; with the
    /// usage record on, it only gets its record.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        var policy = RouteSessionPolicy.For(route);
        if (policy.Enabled)
        {
            return ProxyStreamAsync(context, route, policy, next);
        }

        return recording.RecordsUntracked ? ProxyUntrackedAsync(context, route.RouteId, next) : next(context);
    }

    private async Task ProxyUntrackedAsync(HttpContext context, string routeId, RequestDelegate next)
    {
        var startedAt = time.GetTimestamp();
        await next(context);
        recording.Untracked(context, routeId, startedAt);
    }

    private async Task ProxyStreamAsync(HttpContext context, RouteConfig route, RouteSessionPolicy policy, RequestDelegate next)
    {
        // Counted until its notice is written: the shutdown drain waits for every stream, keyed or not.
        using var running = shutdown.Enter();
        var startedAt = time.GetTimestamp();
        using var stream = await opening.BeginAsync(context, route.RouteId, policy, startedAt);
        var session = stream.Session;
        var originalBody = context.Request.Body;
        if (policy.Resume is not null && ResumeReplay.LastEventId(context.Request) is { } lastEventId)
        {
            // A resume never goes upstream: the key's stream, kept on this replica, answers it.
            await replay.ServeAsync(context, route.RouteId, session, lastEventId, shutdown.Token);
            return;
        }

        var usageRequest = policy.IncludeUsage && session.Key.Error is null ? stream.Adapter.AskForUsage(context.Request) : null;
        if (!await admission.AdmitAsync(stream))
        {
            context.Request.Body = originalBody;
            return;
        }

        using var activity = GatewayActivity.Source.StartActivity("session_stream");
        var responseBody = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        opening.Open(stream, usageRequest, responseBody);
        var outcome = StreamOutcome.None;
        try
        {
            try
            {
                await next(context);
            }
            finally
            {
                stream.UpstreamClosedAt = time.GetTimestamp();
                stream.Dispose(); // the request's own lifetime and reset features back
                admission.Release(stream);
                context.Request.Body = originalBody;
            }

            outcome = await ending.EndAsync(stream);
        }
        finally
        {
            context.Features.Set(responseBody);
            stream.Tap.DropHeld();
            stream.Resume?.StreamEnded(outcome);
        }

        var model = recording.Ended(stream, outcome);
        activity?.SetTag("llm_gateway.route", route.RouteId);
        activity?.SetTag("llm_gateway.api", stream.Adapter.Label);
        activity?.SetTag("llm_gateway.outcome", outcome.ToLabel());
        activity?.SetTag("gen_ai.request.model", model);
    }
}
