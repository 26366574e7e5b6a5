using Gateway.Protocols;
using Gateway.Sessions;
using Gateway.Telemetry;

namespace Gateway.Resume;

/// <summary>
/// The events of one resumable stream, as its clients are sent them: each SSE event gets an <c>id:</c> line of the
/// gateway's (<see cref="ResumeIds"/>), upstream <c>id</c> lines are taken out, and the last
/// <see cref="ResumeOptions.MaxStreamBytes"/> of events are kept. The first client reads them as they come (the
/// response tap sends through here); when it leaves without a stop, the stream is <b>detached</b>: the upstream
/// goes on generating for the route's window while the events are kept, and a resume (<see cref="ResumeReplay"/>)
/// sends those after its <c>Last-Event-ID</c> and then the live ones. A stream detached past its window, or past a
/// bound, is <b>abandoned</b>: <see cref="Abandoned"/> fires, and the abort guard aborts the upstream at once.
/// </summary>
/// <remarks>A stream that is not SSE, or answers an error status, or whose client leaves before it was sent one
/// event, is not resumable: it is declined at its first bytes (or abandoned at once), and behaves as on any route.</remarks>
internal sealed class ResumeLog
{
    private readonly record struct Event(byte[] Bytes, long Tokens, long Sequence);

    private readonly object _gate = new();
    private readonly ResumeStore _store;
    private readonly List<Event> _events = [];
    private readonly CancellationTokenSource _abandon = new();
    private readonly SemaphoreSlim _originalWrites = new(1, 1);
    private readonly Func<long> _tokens;
    private readonly long _maxBytes;
    private byte[] _pending = [];
    private int _pendingLength;
    private long _first = 1;     // the sequence number of _events[0]
    private long _next = 1;      // the sequence number the next event gets
    private long _delivered;     // the highest sequence number written to a client
    private long _deliveredTokens;
    private long _bytes;
    private bool _started;
    private bool _originalAttached = true;
    private Stream? _original;
    private Resumer? _resumer;
    private ITimer? _timer;
    private bool _detached;
    private bool _noticeAppended;
    private StreamOutcome _reason;
    private TaskCompletionSource _changed = NewSignal();
    private int _forgotten;
    private CancellationTokenRegistration _leaseWatch;
    private long _keptFinished; // bytes counted in the store's bound while finished and kept

    public ResumeLog(ResumeStore store, SessionKey key, string routeId, TimeSpan window, ApiAdapter adapter, long maxBytes,
        Func<long> tokens, Func<string> model)
    {
        _store = store;
        Key = key;
        RouteId = routeId;
        Window = window;
        Adapter = adapter;
        _maxBytes = maxBytes;
        _tokens = tokens;
        Model = model;
    }

    public string StreamId { get; } = ResumeIds.NewStreamId();

    public SessionKey Key { get; }

    /// <summary>The credential part of the key: what the per-tenant bound counts by.</summary>
    public string Tenant => Key.TenantSession[..Key.TenantSession.IndexOf('\n')];

    public string RouteId { get; }

    public TimeSpan Window { get; }

    public ApiAdapter Adapter { get; }

    public Func<string> Model { get; }

    /// <summary>The response's content type, for a resume's response.</summary>
    public string? ContentType { get; private set; }

    /// <summary>Fires when the stream is to be aborted although its client went away without a stop: its window
    /// passed, a bound was passed, or it was not resumable.</summary>
    public CancellationToken Abandoned => _abandon.Token;

    public LogState State { get; private set; } = LogState.Live;

    /// <summary>Bytes of events kept.</summary>
    public long Bytes
    {
        get
        {
            lock (_gate)
            {
                return _bytes;
            }
        }
    }

    /// <summary>True while nobody reads the stream and it goes on generating.</summary>
    public bool Detached
    {
        get
        {
            lock (_gate)
            {
                return _detached;
            }
        }
    }

    /// <summary>The response tap's write to the first client, through the log: whole events get their ids and are
    /// kept; they reach the first client while it is attached. <paramref name="own"/> marks the gateway's own end notice.</summary>
    public async ValueTask SendAsync(ReadOnlyMemory<byte> bytes, bool own, Stream original, HttpResponse? response, Framing framing,
        CancellationToken cancellationToken)
    {
        if (!_started)
        {
            _started = true;
            lock (_gate)
            {
                _original = original;
            }

            if (framing != Framing.Sse || (response?.StatusCode ?? 200) >= 400 || own)
            {
                Decline();
            }
            else
            {
                ContentType = response?.ContentType;
            }
        }

        if (State == LogState.Declined)
        {
            await original.WriteAsync(bytes, cancellationToken);
            return;
        }

        List<Event> framed;
        bool send;
        var abandon = false;
        var decline = false;
        var noticeOnly = false;
        lock (_gate)
        {
            if (State != LogState.Live)
            {
                // Cancelled (its lease, at once): nothing more is kept, but the gateway's end notice still reaches
                // a first client that is there.
                noticeOnly = own && _originalAttached;
                framed = [];
                send = false;
            }

            else
            {
                if (own)
                {
                    _pendingLength = 0; // half an event never reaches a client before the notice
                    _noticeAppended = true;
                }

                framed = Append(bytes.Span, out decline);
                send = _originalAttached && framed.Count > 0;
                if (_detached && framed.Count > 0)
                {
                    abandon = !WithinBounds();
                }

                Signal();
            }
        }

        if (noticeOnly)
        {
            await WriteOriginalRawAsync(bytes, cancellationToken);
            return;
        }

        if (decline)
        {
            _store.Forget(this);
            if (!send)
            {
                Cancel(); // nobody reads it, and it cannot be resumed
            }
        }

        if (abandon)
        {
            Overflowed();
        }

        if (send)
        {
            await WriteOriginalAsync(framed, cancellationToken);
        }
    }

    /// <summary>The first client's flush; nothing once it is detached.</summary>
    public Task FlushAsync(Stream original, CancellationToken cancellationToken) =>
        State == LogState.Declined || Volatile.Read(ref _originalAttached) ? original.FlushAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>The first client went away. Resumable: the stream detaches for its window. Not (declined, or
    /// nothing sent yet): it is abandoned at once, as on a route without resume.</summary>
    public void OriginalGone()
    {
        var abandon = false;
        var overflow = false;
        lock (_gate)
        {
            if (!_originalAttached)
            {
                return;
            }

            _originalAttached = false;
            if (State == LogState.Declined || (State == LogState.Live && _delivered == 0 && _resumer is null))
            {
                abandon = true;
            }
            else if (State == LogState.Live && _resumer is null)
            {
                overflow = !BeginDetach();
            }
        }

        if (abandon)
        {
            Cancel();
        }
        else if (overflow)
        {
            Overflowed();
        }
    }

    /// <summary>A resume asks for the events after <paramref name="after"/>: it becomes the stream's reader (the
    /// reader before it, first client or resume, is told it was superseded), or gets a reason why not.</summary>
    public AttachResult Attach(Resumer resumer, long after)
    {
        Resumer? previous;
        Stream? original = null;
        lock (_gate)
        {
            if (State is not (LogState.Live or LogState.Finished) || after < _first - 1 || after >= _next || after < 1)
            {
                return AttachResult.Unavailable;
            }

            if (State == LogState.Finished && after == _next - 1)
            {
                return AttachResult.AllDelivered;
            }

            previous = _resumer;
            _resumer = resumer;
            if (_originalAttached)
            {
                _originalAttached = false;
                original = _original;
            }

            EndDetach();
        }

        previous?.Supersede();
        _store.Mirror?.ReaderHere(this);
        if (original is not null)
        {
            _ = TellOriginalAsync(original);
        }

        return AttachResult.Attached;
    }

    /// <summary>Copies the events after <paramref name="after"/> into <paramref name="into"/>; returns the state they
    /// were read in, and the signal of the next change.</summary>
    public (LogState State, Task Changed, bool NoticeSent, bool Lost) Read(long after, List<byte[]> into)
    {
        lock (_gate)
        {
            if (after < _first - 1)
            {
                return (State, _changed.Task, _noticeAppended, true);
            }

            for (var i = (int)(after - _first + 1); i < _events.Count; i++)
            {
                into.Add(_events[i].Bytes);
            }

            return (State, _changed.Task, _noticeAppended, false);
        }
    }

    /// <summary>Events up to <paramref name="sequence"/> were written to a client.</summary>
    public void Delivered(long sequence)
    {
        lock (_gate)
        {
            if (sequence > _delivered && sequence >= _first && sequence < _next)
            {
                _delivered = sequence;
                _deliveredTokens = _events[(int)(sequence - _first)].Tokens;
            }
        }
    }

    /// <summary>The resume's client went away: while the upstream generates, the stream detaches again.</summary>
    public void ResumerGone(Resumer resumer)
    {
        var overflow = false;
        lock (_gate)
        {
            if (_resumer != resumer)
            {
                return;
            }

            _resumer = null;
            if (State == LogState.Live)
            {
                overflow = !BeginDetach();
            }
        }

        if (overflow)
        {
            Overflowed();
        }
    }

    /// <summary>Ends the stream here the moment its lease is cancelled (stop, supersede): a resume that arrives while
    /// the upstream request is still being aborted is already refused, and a reader attached is told why at once.</summary>
    public void Watch(Lease lease) =>
        _leaseWatch = lease.Token.UnsafeRegister(static state =>
        {
            var (log, lease) = ((ResumeLog, Lease))state!;
            log.Cancelled(lease.Reason);
        }, (this, lease));

    private void Cancelled(StreamOutcome reason)
    {
        lock (_gate)
        {
            if (State != LogState.Live)
            {
                return;
            }

            EndDetach();
            State = LogState.Aborted;
            _reason = reason == StreamOutcome.None ? StreamOutcome.Superseded : reason;
            _pendingLength = 0;
            Signal();
        }
    }

    /// <summary>The upstream request is over (the step's ending told how). Its own end: the events are kept for the
    /// window, for a reader that did not get them all. A cancellation (stop, supersede, shutdown, abandon): the log
    /// is forgotten at once, and a reader attached is told why.</summary>
    public void StreamEnded(StreamOutcome outcome)
    {
        _leaseWatch.Dispose();
        lock (_gate)
        {
            EndDetach();
            if (State == LogState.Live)
            {
                _pendingLength = 0;
                if (outcome.IsCancellation() || outcome == StreamOutcome.None) // None: the forwarder threw
                {
                    State = LogState.Aborted;
                    _reason = outcome;
                }
                else
                {
                    State = LogState.Finished;
                    // Kept for the window while the gateway's bound has room for it; else forgotten at once.
                    if (_store.TryKeepFinished(this, _bytes))
                    {
                        _keptFinished = _bytes;
                        _timer = _store.Time.CreateTimer(static s => ((ResumeLog)s!).Forget(), this, Window, Timeout.InfiniteTimeSpan);
                    }
                }
            }

            if (State != LogState.Declined && _next > 1)
            {
                _store.Mirror?.Ended(this, State, _reason.ToLabel(), _next - 1, State == LogState.Finished ? Window : AbortedKept);
            }

            Signal();
        }

        if (State != LogState.Finished || Volatile.Read(ref _keptFinished) == 0)
        {
            Forget(); // a reader attached still reads this log to its end; a new resume no longer finds it
        }
    }

    /// <summary>Why an aborted stream ended, for the reader attached.</summary>
    public StreamOutcome Reason
    {
        get
        {
            lock (_gate)
            {
                return _reason;
            }
        }
    }

    /// <summary>Tokens generated that no client was sent: counted once, when the log is forgotten.</summary>
    public long UndeliveredTokens()
    {
        lock (_gate)
        {
            return _started && State != LogState.Declined ? Math.Max(0, _tokens() - _deliveredTokens) : 0;
        }
    }

    /// <summary>True the first time only: the store forgets a log, and counts what it never delivered, once.</summary>
    public bool MarkForgotten() => Interlocked.Exchange(ref _forgotten, 1) == 0;

    /// <summary>Bytes this finished log holds in the store's bound (0 when it is not kept finished).</summary>
    public long KeptFinishedBytes
    {
        get
        {
            lock (_gate)
            {
                return _keptFinished;
            }
        }
    }

    private List<Event> Append(ReadOnlySpan<byte> bytes, out bool declined)
    {
        declined = false;
        var framed = new List<Event>(1);
        EnsurePending(_pendingLength + bytes.Length);
        bytes.CopyTo(_pending.AsSpan(_pendingLength));
        _pendingLength += bytes.Length;
        var start = 0;
        while (SseEvents.NextEventEnd(_pending.AsSpan(start, _pendingLength - start)) is var end and > 0)
        {
            var block = _pending.AsSpan(start, end);
            start += end;
            var sequence = _next;
            if (SseEvents.Frame(block, ResumeIds.Of(StreamId, sequence)) is not { } bytesWithId)
            {
                continue; // a blank line of its own: no event
            }

            var e = new Event(bytesWithId, _tokens(), sequence);
            if (sequence == 1)
            {
                _store.Mirror?.Started(this);
            }

            _store.Mirror?.Appended(this, sequence, bytesWithId, e.Tokens);
            _events.Add(e);
            _next++;
            _bytes += bytesWithId.Length;
            if (_detached)
            {
                _store.DetachedBytesChanged(bytesWithId.Length);
            }

            framed.Add(e);
        }

        if (start > 0)
        {
            _pending.AsSpan(start, _pendingLength - start).CopyTo(_pending);
            _pendingLength -= start;
        }

        if (_pendingLength > _maxBytes)
        {
            // One event bigger than a stream may keep: the stream is passed on as it comes, and is not resumable.
            framed.Add(new Event(_pending.AsSpan(0, _pendingLength).ToArray(), 0, 0));
            _pendingLength = 0;
            State = LogState.Declined;
            declined = true;
            EndDetach();
        }

        Trim();
        return framed;
    }

    /// <summary>Forgets the oldest events past the per-stream bound: while a client reads, those it was sent first.</summary>
    private void Trim()
    {
        var forgotten = 0L;
        while (_bytes > _maxBytes && _events.Count > 1 && (_first <= _delivered || !_detached))
        {
            forgotten += _events[0].Bytes.Length;
            _bytes -= _events[0].Bytes.Length;
            _events.RemoveAt(0);
            _first++;
        }

        if (_detached && forgotten > 0)
        {
            _store.DetachedBytesChanged(-forgotten);
        }

        if (forgotten > 0)
        {
            _store.Mirror?.Trimmed(this, _first);
        }
    }

    /// <summary>For a detached stream: whether it still fits its own bound and the gateway's.</summary>
    private bool WithinBounds() => _bytes <= _maxBytes && _store.DetachedBytesWithinBound();

    private bool BeginDetach()
    {
        if (_detached)
        {
            return true;
        }

        if (!_store.TryDetach(this, _bytes))
        {
            return false;
        }

        _detached = true;
        _timer?.Dispose();
        _timer = _store.Time.CreateTimer(static s => ((ResumeLog)s!).Expire(), this, Window, Timeout.InfiniteTimeSpan);
        return WithinBounds();
    }

    private void EndDetach()
    {
        if (!_detached)
        {
            return;
        }

        _detached = false;
        _timer?.Dispose();
        _timer = null;
        _store.Undetach(this, _bytes);
    }

    /// <summary>How long Redis keeps an aborted stream's record, so that a resume elsewhere is told it cannot resume.</summary>
    private static readonly TimeSpan AbortedKept = TimeSpan.FromSeconds(30);

    private void Expire()
    {
        if (_store.Mirror is { } mirror)
        {
            _ = ExpireUnlessReadElsewhereAsync(mirror);
            return;
        }

        ExpireNow();
    }

    /// <summary>A reader on another replica holds the stream: the window starts again.</summary>
    private async Task ExpireUnlessReadElsewhereAsync(RedisResumeMirror mirror)
    {
        if (await mirror.ReaderElsewhereAsync(this))
        {
            lock (_gate)
            {
                if (_detached && State == LogState.Live)
                {
                    _timer?.Dispose();
                    _timer = _store.Time.CreateTimer(static s => ((ResumeLog)s!).Expire(), this, Window, Timeout.InfiniteTimeSpan);
                }
            }

            return;
        }

        ExpireNow();
    }

    private void ExpireNow()
    {
        lock (_gate)
        {
            if (!_detached || State != LogState.Live)
            {
                return;
            }

            EndDetach();
            State = LogState.Aborted;
            _reason = StreamOutcome.ClientDisconnected;
            Signal();
        }

        _store.Expired(this);
        Cancel();
    }

    private void Overflowed()
    {
        lock (_gate)
        {
            EndDetach();
            if (State == LogState.Live)
            {
                State = LogState.Aborted;
                _reason = StreamOutcome.ClientDisconnected;
            }

            Signal();
        }

        _store.Overflowed(this);
        Cancel();
    }

    private void Decline()
    {
        lock (_gate)
        {
            State = LogState.Declined;
        }

        _store.Forget(this);
    }

    private void Cancel()
    {
        try
        {
            _abandon.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the stream is over
        }
    }

    private void Forget()
    {
        lock (_gate)
        {
            _timer?.Dispose();
            _timer = null;
        }

        _store.Forget(this);
    }

    private async Task WriteOriginalAsync(List<Event> framed, CancellationToken cancellationToken)
    {
        await _originalWrites.WaitAsync(CancellationToken.None);
        try
        {
            if (!Volatile.Read(ref _originalAttached))
            {
                return;
            }

            foreach (var e in framed)
            {
                await _original!.WriteAsync(e.Bytes, cancellationToken);
            }

            Delivered(framed[^1].Sequence);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            OriginalGone();
        }
        finally
        {
            _originalWrites.Release();
        }
    }

    private async Task WriteOriginalRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _originalWrites.WaitAsync(CancellationToken.None);
        try
        {
            if (Volatile.Read(ref _originalAttached))
            {
                await _original!.WriteAsync(bytes, cancellationToken);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException
            || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            OriginalGone();
        }
        finally
        {
            _originalWrites.Release();
        }
    }

    /// <summary>A resume took over from a first client that is still connected: it is told it was superseded, and
    /// its response gets nothing more.</summary>
    private async Task TellOriginalAsync(Stream original)
    {
        await _originalWrites.WaitAsync(CancellationToken.None);
        try
        {
            if (Adapter.StreamError(EndNotice.Superseded, Framing.Sse) is { } notice)
            {
                await original.WriteAsync(notice);
                await original.FlushAsync();
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            // it had gone too
        }
        finally
        {
            _originalWrites.Release();
        }
    }

    private void EnsurePending(int needed)
    {
        if (_pending.Length < needed)
        {
            Array.Resize(ref _pending, Math.Max(needed, Math.Max(1024, _pending.Length * 2)));
        }
    }

    private void Signal()
    {
        var changed = _changed;
        _changed = NewSignal();
        changed.TrySetResult();
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

internal enum LogState
{
    /// <summary>The upstream is generating.</summary>
    Live,
    /// <summary>The upstream ended by itself; the events are kept for the window.</summary>
    Finished,
    /// <summary>Cancelled (stop, supersede, shutdown) or abandoned: nothing can be resumed.</summary>
    Aborted,
    /// <summary>Not resumable (not SSE, an error status): passed through untouched.</summary>
    Declined,
}

internal enum AttachResult
{
    Attached,
    /// <summary>The stream ended and its reader had every event: nothing more to send (204).</summary>
    AllDelivered,
    Unavailable,
}
