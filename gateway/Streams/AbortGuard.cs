using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Streams;

/// <summary>
/// Stands in for the request's lifetime (and HTTP/2 reset) feature while YARP forwards it.
/// <para>
/// YARP takes its cancellation from <c>HttpContext.RequestAborted</c>, so the token handed out here
/// also fires when the lease is cancelled or the shutdown drain deadline passes: the upstream request
/// is aborted at once. When the response copy then fails, YARP aborts the client connection, which a
/// client sees as a bare reset with no reason. The guard records that abort instead, so the session step can end the response in its own
/// protocol (an SSE error event, an NDJSON error line), and performs the real abort only when nothing
/// better can be said.
/// </para>
/// </summary>
internal sealed class AbortGuard : IHttpRequestLifetimeFeature, IHttpResetFeature, IDisposable
{
    private readonly IFeatureCollection _features;
    private readonly IHttpRequestLifetimeFeature _lifetime;
    private readonly IHttpResetFeature? _reset;
    private readonly CancellationTokenSource? _linked;
    private readonly TimeProvider _time;
    private readonly CancellationTokenRegistration _clientGone;
    private int? _resetCode;
    private long _clientAbortedAt;

    private AbortGuard(IFeatureCollection features, IHttpRequestLifetimeFeature lifetime, IHttpResetFeature? reset, CancellationToken lease, CancellationToken shutdown, TimeProvider time)
    {
        _features = features;
        _lifetime = lifetime;
        _reset = reset;
        _time = time;
        if (lease.CanBeCanceled || shutdown.CanBeCanceled)
        {
            _linked = lease.CanBeCanceled && shutdown.CanBeCanceled
                ? CancellationTokenSource.CreateLinkedTokenSource(lifetime.RequestAborted, lease, shutdown)
                : CancellationTokenSource.CreateLinkedTokenSource(lifetime.RequestAborted, lease.CanBeCanceled ? lease : shutdown);
        }

        _clientGone = lifetime.RequestAborted.UnsafeRegister(
            static state => ((AbortGuard)state!).MarkClientGone(), this);
    }

    /// <summary>Installs a guard on the request; <paramref name="lease"/> and <paramref name="shutdown"/> join the client's abort token.</summary>
    public static AbortGuard Install(HttpContext context, CancellationToken lease, CancellationToken shutdown, TimeProvider time)
    {
        var features = context.Features;
        var lifetime = features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
        var reset = features.Get<IHttpResetFeature>();
        var guard = new AbortGuard(features, lifetime, reset, lease, shutdown, time);
        features.Set<IHttpRequestLifetimeFeature>(guard);
        if (reset is not null)
        {
            features.Set<IHttpResetFeature>(guard);
        }

        return guard;
    }

    /// <summary>The client's abort token, linked with the lease's and the shutdown deadline's.</summary>
    public CancellationToken RequestAborted
    {
        get => _linked?.Token ?? _lifetime.RequestAborted;
        set { } // Nobody downstream may replace the token the lease depends on.
    }

    /// <summary>True once something asked for the client connection to be aborted or reset.</summary>
    public bool AbortRequested { get; private set; }

    /// <summary>True when the client itself went away.</summary>
    public bool ClientAborted => _lifetime.RequestAborted.IsCancellationRequested;

    /// <summary><see cref="TimeProvider.GetTimestamp"/> when the client went away; 0 if it did not.</summary>
    public long ClientAbortedAt => Volatile.Read(ref _clientAbortedAt);

    public void Abort() => AbortRequested = true;

    private void MarkClientGone() => Volatile.Write(ref _clientAbortedAt, _time.GetTimestamp());

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

        _lifetime.Abort();
    }

    /// <summary>Puts the original features back, so what runs after the forwarder sees the real connection.</summary>
    public void Dispose()
    {
        _clientGone.Dispose();
        _features.Set(_lifetime);
        if (_reset is not null)
        {
            _features.Set(_reset);
        }

        _linked?.Dispose();
    }
}
