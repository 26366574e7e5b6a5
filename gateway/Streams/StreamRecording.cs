using Gateway.Protocols;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Streams;

/// <summary>
/// How a stream's end is written down: its log line, the active-streams gauge, and its figures handed to the
/// accounting (metrics, savings, the usage record), at once or once a drained upstream has been read to its end.
/// </summary>
internal sealed class StreamRecording(
    StreamAccounting accounting,
    UsageRecords usage,
    SessionKeyResolver resolver,
    ModelLabels models,
    ShutdownSignal shutdown,
    TimeProvider time,
    ILogger<SessionStreamStep> logger)
{
    /// <summary>Records a stream that went upstream and ended with <paramref name="outcome"/>; returns the model
    /// label it was recorded under.</summary>
    public string Ended(SessionStream stream, StreamOutcome outcome)
    {
        var tap = stream.Tap;
        var lease = stream.Lease;
        var facts = stream.Facts;
        var model = models.For(facts.Model ?? tap.Counter?.ResponseModel);
        var drain = stream.Drain;
        var draining = drain?.Began == true;
        if (!draining)
        {
            tap.Counter?.Complete();
            drain?.Dispose();
        }

        if (lease is not null)
        {
            SessionStreamLog.StreamEnded(logger, stream.RouteId, lease.Key.Fingerprint(), outcome.ToLabel());
        }

        TimeSpan? firstWrite = tap.FirstWriteAt == 0 ? null : time.GetElapsedTime(stream.StartedAt, tap.FirstWriteAt);
        if (!stream.Accounted)
        {
            tap.Counter?.Dispose();
            usage.Ended(stream.RouteId, stream.Adapter.Label, outcome, Who(stream, null, facts.Model),
                firstWrite is { } first ? Math.Round(first.TotalMilliseconds, 1) : null);
            return model;
        }

        stream.StartGauge(models.For(facts.Model)); // when the body never ended, so that the end can pair with it
        stream.EndGauge();
        var end = new StreamEnd(stream.RouteId, model, stream.Adapter.Operation, outcome, facts, tap.Counter, firstWrite?.TotalSeconds,
            CancelLatency(stream, outcome), Drained: false, lease?.Key.TenantSession)
        {
            Api = stream.Adapter.Label,
            Who = Who(stream, lease?.Key, facts.Model ?? tap.Counter?.ResponseModel),
            ErrorClass = outcome != StreamOutcome.UpstreamError ? null
                : stream.Context.Response.StatusCode >= 500 ? "5xx"
                : stream.Context.Response.StatusCode >= 400 ? "4xx"
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

        return model;
    }

    /// <summary>Records a keyed stream that ended before it went upstream (superseded, stopped, shutdown, or left
    /// during its debounce window): a stream of its outcome, with no tokens.</summary>
    public void NeverUpstream(SessionStream stream, StreamOutcome outcome)
    {
        var lease = stream.Lease!;
        var facts = stream.Session.Facts;
        stream.StartGauge(models.For(facts.Model));
        stream.EndGauge();
        accounting.Record(new StreamEnd(stream.RouteId, models.For(facts.Model), stream.Adapter.Operation, outcome,
            facts, null, null, time.GetElapsedTime(stream.StartedAt).TotalSeconds, Drained: false, lease.Key.TenantSession)
        {
            Api = stream.Adapter.Label,
            Who = Who(stream, lease.Key, facts.Model),
        });
    }

    /// <summary>Records a request refused before it claimed anything (a malformed key, a busy session): its usage record.</summary>
    public void Refused(SessionStream stream, StreamOutcome outcome, SessionKey? key = null) =>
        usage.Ended(stream.RouteId, stream.Adapter.Label, outcome, Who(stream, key, stream.Session.Facts.Model));

    /// <summary>Whether a route without session streams needs anything recorded: only its usage record, when on.</summary>
    public bool RecordsUntracked => usage.On;

    /// <summary>A route without session streams, proxied as plain YARP does: its body is not read, so its usage
    /// record carries no tokens and no model, only who, the outcome and the time.</summary>
    public void Untracked(HttpContext context, string routeId, long startedAt)
    {
        var error = context.Features.Get<IForwarderErrorFeature>()?.Error ?? ForwarderError.None;
        var outcome = error switch
        {
            ForwarderError.None => context.Response.StatusCode >= 400 ? StreamOutcome.UpstreamError : StreamOutcome.Completed,
            ForwarderError.RequestTimedOut => StreamOutcome.Timeout,
            ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.ResponseBodyCanceled
                or ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient => StreamOutcome.ClientDisconnected,
            _ => StreamOutcome.UpstreamError,
        };
        usage.Ended(routeId, ApiAdapters.For(context.Request).Label, outcome,
            UsageSubject.Of(resolver.CredentialHash(context), null, null, time.GetElapsedTime(startedAt)));
    }

    /// <summary>The caller as the usage record names it, and the request's time so far.</summary>
    private UsageSubject Who(SessionStream stream, SessionKey? key, string? model) =>
        UsageSubject.Of(resolver.CredentialHash(stream.Context), key?.Fingerprint(), model, time.GetElapsedTime(stream.StartedAt));

    /// <summary>From the decision to cancel (the client's leaving, the newer claim, the stop, the shutdown deadline)
    /// to the upstream's close; null for a stream nobody cancelled.</summary>
    private double? CancelLatency(SessionStream stream, StreamOutcome outcome)
    {
        var lease = stream.Lease;
        var cancelledAt = outcome switch
        {
            StreamOutcome.ClientDisconnected => stream.ClientAbortedAt,
            StreamOutcome.Completed or StreamOutcome.UpstreamError => 0,
            StreamOutcome.Shutdown when lease?.CancelledAt is null or 0 => shutdown.CancelledAt,
            _ => lease?.CancelledAt ?? 0,
        };
        return cancelledAt == 0 ? null : Math.Max(0, time.GetElapsedTime(cancelledAt, stream.UpstreamClosedAt).TotalSeconds);
    }
}
