using Gateway.Draining;
using Gateway.Protocols;
using Gateway.Resume;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;
using Gateway.Tokens;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Gateway.Streams;

/// <summary>Makes a request of a session-streams route into a <see cref="SessionStream"/>, and puts the stream's
/// taps and abort guard on the request before it is forwarded.</summary>
internal sealed class StreamOpening(
    SessionKeyResolver resolver,
    TokenizerCounting tokenizer,
    StreamAccounting accounting,
    IHostApplicationLifetime lifetime,
    IOptions<SavingsOptions> savings,
    ShutdownSignal shutdown,
    ResumeStore resumable,
    GatewayMetrics metrics,
    ModelLabels models,
    TimeProvider time)
{
    /// <summary>The stream of a request, with what <see cref="SessionResolution"/> learned before the limits (or
    /// learns now, where that middleware did not run).</summary>
    public async ValueTask<SessionStream> BeginAsync(HttpContext context, string routeId, RouteSessionPolicy policy, long startedAt)
    {
        var session = context.Features.Get<SessionRequest>()
            ?? await SessionResolution.ResolveAsync(context, routeId, policy, resolver, time);
        return new SessionStream(context, routeId, policy, session, startedAt, metrics, models);
    }

    /// <summary>
    /// Puts the stream on the request before it is forwarded: the body's tap (its facts read from the whole body as
    /// it goes, the stream counted active once it has gone), the response's tap (tokens counted, whole events only),
    /// the drain context of a route that drains, the log of a resumable stream, and the abort guard that joins the lease and the shutdown deadline
    /// to the client's abort.
    /// </summary>
    public void Open(SessionStream stream, IUsageRequest? usageRequest, IHttpResponseBodyFeature responseBody)
    {
        var context = stream.Context;
        var accounted = stream.Accounted;
        if (accounted)
        {
            TapBody(stream);
        }

        var tap = new ResponseTap(responseBody, context.Response, time, keepText: tokenizer.Enabled, countTokens: accounted, stream.Adapter)
        {
            UsageRequest = usageRequest,
        };
        stream.Tap = tap;
        context.Features.Set<IHttpResponseBodyFeature>(tap);
        context.Features.Get<StreamTokens>()?.Attach(tap);
        var drain = stream.Policy.CancelPolicy == CancelPolicy.Drain
            ? new DrainContext(accounting, lifetime.ApplicationStopping, savings.Value.MaxDrainTime) { Tap = tap, Adapter = stream.Adapter }
            : null;
        stream.Drain = drain;
        context.Features.Set(drain);
        if (stream.Policy.Resume is { } window && stream.Lease is { } lease)
        {
            var log = resumable.Open(lease.Key, stream.RouteId, window, stream.Adapter, stream.TokensSoFar, () => stream.ModelLabel);
            log.Watch(lease);
            stream.Resume = log;
            tap.Resume = log;
        }

        stream.Lease?.Describe(stream.RouteId, models.For(stream.Session.Facts.Model), stream.TokensSoFar);
        stream.GuardAborts(stream.Lease?.Token ?? default, shutdown.Token, time);
    }

    /// <summary>A JSON body is read as the forwarder sends it; any other counts the stream active at once.</summary>
    private static void TapBody(SessionStream stream)
    {
        var request = stream.Context.Request;
        var adapter = stream.Adapter;
        var fromPath = adapter.FromPath(request.Path.Value ?? "", request.Query);
        if (!ApiAdapters.IsJsonBody(request))
        {
            stream.StartGauge(stream.ModelLabel);
            return;
        }

        var scanner = adapter.ScanBody();
        stream.ReadBody(scanner, fromPath);
        request.Body = new RequestBodyTap(request.Body, scanner, stream);
    }
}
