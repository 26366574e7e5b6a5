using Gateway.Draining;
using Gateway.Protocols;
using Gateway.Resume;
using Gateway.Sessions;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Streams;

/// <summary>
/// One stream of a session-streams route, from its claim to its record: what the step learned of it (route,
/// API, facts, lease), what it put on the request (the body's tap, the response's tap, and this object as the
/// request's lifetime and reset features), and when things happened. Admission, opening, ending and recording
/// (files of their own) each take it whole; it is the one object a stream costs besides the taps.
/// </summary>
/// <remarks>
/// <para><b>The abort guard.</b> YARP takes its cancellation from <c>HttpContext.RequestAborted</c>, so the token
/// handed out here also fires when the lease is cancelled or the shutdown drain deadline passes: the upstream
/// request is aborted at once. When the response copy then fails, YARP aborts the client connection, which a
/// client sees as a bare reset with no reason. The stream records that abort instead, so that the ending can
/// close the response in its own protocol (an SSE error event, an NDJSON error line), and performs the real
/// abort only when nothing better can be said.</para>
/// <para><b>The active-streams gauge.</b> A stream is counted once its request has gone upstream whole (when its
/// model, read from the whole body, is known) and uncounted with the same labels when it ends, whichever thread
/// gets there first.</para>
/// </remarks>
internal sealed class SessionStream(HttpContext context, string routeId, RouteSessionPolicy policy, SessionRequest session,
    long startedAt, GatewayMetrics metrics, ModelLabels models) : IHttpRequestLifetimeFeature, IHttpResetFeature, IDisposable
{
    private const int NotStarted = 0, Started = 1, Ended = 2;
    private int _gauge;
    private string _gaugeModel = ModelLabels.Unknown;

    private BodyScanner? _body;
    private RequestFacts _fromPath = RequestFacts.None;

    private IHttpRequestLifetimeFeature? _lifetime;
    private IHttpResetFeature? _reset;
    private CancellationTokenSource? _linked;
    private CancellationTokenRegistration _clientGone;
    private TimeProvider _time = TimeProvider.System;
    private int? _resetCode;
    private long _clientAbortedAt;

    public HttpContext Context { get; } = context;

    public string RouteId { get; } = routeId;

    public RouteSessionPolicy Policy { get; } = policy;

    /// <summary>What was known before the body went upstream: the API, the early facts, the session key.</summary>
    public SessionRequest Session { get; } = session;

    public ApiAdapter Adapter => Session.Adapter;

    /// <summary><see cref="TimeProvider.GetTimestamp"/> when the step began.</summary>
    public long StartedAt { get; } = startedAt;

    /// <summary>The claim on the session key; null for a stream without a key.</summary>
    public Lease? Lease { get; set; }

    /// <summary>Known APIs are accounted for (gauge, tokens, savings); anything else only when it belongs to a session.</summary>
    public bool Accounted => Lease is not null || Adapter.Api != Api.Other;

    public ResponseTap Tap { get; set; } = null!;

    /// <summary>Set on a resumable route for a keyed stream: its events, kept for a resume.</summary>
    public ResumeLog? Resume { get; set; }

    /// <summary>Set on a route that drains instead of aborting.</summary>
    public DrainContext? Drain { get; set; }

    /// <summary><see cref="TimeProvider.GetTimestamp"/> when the forwarder returned.</summary>
    public long UpstreamClosedAt { get; set; }

    /// <summary>The request's facts: what the path says, then the whole body (once it has gone), then the bytes seen before forwarding.</summary>
    public RequestFacts Facts => _body is null ? Session.Facts : _fromPath.Or(Adapter.FromBody(_body)).Or(Session.Facts);

    /// <summary>The request's model as a metric label.</summary>
    public string ModelLabel => models.For(Facts.Model);

    /// <summary>Reads the body's facts as the forwarder sends it (<see cref="RequestBodyTap"/>).</summary>
    public void ReadBody(BodyScanner scanner, RequestFacts fromPath)
    {
        _body = scanner;
        _fromPath = fromPath;
    }

    /// <summary>The body has gone upstream whole: the stream counts as active, under the model the body named.</summary>
    public void BodySent() => StartGauge(ModelLabel);

    /// <summary>Counts the stream in the active-streams gauge under <paramref name="model"/>, once.</summary>
    public void StartGauge(string model)
    {
        _gaugeModel = model;
        if (Interlocked.CompareExchange(ref _gauge, Started, NotStarted) == NotStarted)
        {
            metrics.StreamStarted(RouteId, model, Adapter.Label);
        }
    }

    /// <summary>Uncounts the stream with the labels it was counted under.</summary>
    public void EndGauge()
    {
        if (Interlocked.Exchange(ref _gauge, Ended) == Started)
        {
            metrics.StreamStopped(RouteId, _gaugeModel, Adapter.Label);
        }
    }

    /// <summary>Completion tokens counted so far (for the stop endpoint's and the admin view's figures).</summary>
    public long TokensSoFar() => Tap.Counter?.Tokens ?? 0;

    /// <summary>Stands in for the request's lifetime (and HTTP/2 reset) feature while YARP forwards it;
    /// <paramref name="lease"/> and <paramref name="shutdown"/> join the client's abort token.</summary>
    public void GuardAborts(CancellationToken lease, CancellationToken shutdown, TimeProvider time)
    {
        var features = Context.Features;
        var lifetime = features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
        _lifetime = lifetime;
        _reset = features.Get<IHttpResetFeature>();
        _time = time;
        // A resumable stream is not aborted when its client goes away: it detaches, and is aborted when abandoned.
        var client = Resume?.Abandoned ?? lifetime.RequestAborted;
        if (lease.CanBeCanceled || shutdown.CanBeCanceled || Resume is not null)
        {
            _linked = lease.CanBeCanceled && shutdown.CanBeCanceled
                ? CancellationTokenSource.CreateLinkedTokenSource(client, lease, shutdown)
                : CancellationTokenSource.CreateLinkedTokenSource(client, lease.CanBeCanceled ? lease : shutdown);
        }

        _clientGone = lifetime.RequestAborted.UnsafeRegister(static state => ((SessionStream)state!).MarkClientGone(), this);
        features.Set<IHttpRequestLifetimeFeature>(this);
        if (_reset is not null)
        {
            features.Set<IHttpResetFeature>(this);
        }
    }

    /// <summary>The client's abort token, linked with the lease's and the shutdown deadline's.</summary>
    public CancellationToken RequestAborted
    {
        get => _linked?.Token ?? Lifetime.RequestAborted;
        set { } // Nobody downstream may replace the token the lease depends on.
    }

    /// <summary>True once something asked for the client connection to be aborted or reset.</summary>
    public bool AbortRequested { get; private set; }

    /// <summary>True when the client itself went away.</summary>
    public bool ClientAborted => Lifetime.RequestAborted.IsCancellationRequested;

    /// <summary><see cref="TimeProvider.GetTimestamp"/> when the client went away; 0 if it did not.</summary>
    public long ClientAbortedAt => Volatile.Read(ref _clientAbortedAt);

    private IHttpRequestLifetimeFeature Lifetime => _lifetime ?? Context.Features.GetRequiredFeature<IHttpRequestLifetimeFeature>();

    public void Abort() => AbortRequested = true;

    public void Reset(int errorCode)
    {
        AbortRequested = true;
        _resetCode = errorCode;
    }

    /// <summary>Performs the abort that was deferred: an HTTP/2 reset when one was asked for, else a connection abort.</summary>
    public void AbortClient()
    {
        if (_reset is not null)
        {
            const int InternalError = 2;
            _reset.Reset(_resetCode ?? InternalError);
            return;
        }

        Lifetime.Abort();
    }

    private void MarkClientGone()
    {
        Volatile.Write(ref _clientAbortedAt, _time.GetTimestamp());
        Resume?.OriginalGone();
    }

    /// <summary>Puts the original features back, so what runs after the forwarder sees the real connection.</summary>
    public void Dispose()
    {
        if (_lifetime is null)
        {
            return;
        }

        _clientGone.Dispose();
        Context.Features.Set(_lifetime);
        if (_reset is not null)
        {
            Context.Features.Set(_reset);
        }

        _linked?.Dispose();
        _lifetime = null;
    }
}
