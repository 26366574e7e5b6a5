using Gateway.Protocols;
using Gateway.Savings;
using Gateway.Tokens;

namespace Gateway.Draining;

/// <summary>
/// One stream on a route whose cancel policy is <c>Drain</c>. When the forwarder gives the upstream
/// response up (supersede, client gone), the <see cref="DrainingHandler"/> keeps reading it to the
/// end, counting its tokens, and the stream's figures are recorded once both the request and the
/// drain have ended, whichever is last.
/// </summary>
internal sealed class DrainContext : IDisposable
{
    public static readonly HttpRequestOptionsKey<DrainContext> OptionKey = new("LlmGateway.Drain");

    private readonly StreamAccounting _accounting;
    private readonly CancellationTokenSource _stopping;
    private StreamEnd? _end;
    private TokenCounter? _counter;
    private int _parts;

    public DrainContext(StreamAccounting accounting, CancellationToken applicationStopping, TimeSpan maxDrainTime)
    {
        _accounting = accounting;
        _stopping = CancellationTokenSource.CreateLinkedTokenSource(applicationStopping);
        _stopping.CancelAfter(maxDrainTime);
    }

    /// <summary>Ends a drain when the gateway stops or the drain deadline passes.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>The tap of the client response, whose counter the drained bytes continue.</summary>
    public ICountedStream? Tap { get; set; }

    /// <summary>The API of the stream, whose counter reads drained bytes that never reached the client.</summary>
    public ApiAdapter Adapter { get; set; } = ApiAdapters.Other;

    /// <summary>True once the forwarder gave the upstream up and a drain took it over.</summary>
    public bool Began => Volatile.Read(ref _parts) > 0;

    public void Begin() => Interlocked.Exchange(ref _parts, 1);

    /// <summary>The counter for drained bytes: the tap's, or a new one when nothing reached the client.</summary>
    public TokenCounter CounterFor(string? contentType) =>
        _counter ??= Tap?.Counter ?? Adapter.CreateCounter(contentType, null);

    /// <summary>The request side is done; records now if the drain already finished.</summary>
    public void RequestEnded(StreamEnd end)
    {
        _end = end;
        if (Interlocked.Increment(ref _parts) == 3)
        {
            Record();
        }
    }

    /// <summary>The drain read the upstream to its end (or gave up); records now if the request already ended.</summary>
    public void DrainEnded()
    {
        _counter?.Complete();
        if (Interlocked.Increment(ref _parts) == 3)
        {
            Record();
        }
    }

    public void Dispose() => _stopping.Dispose();

    private void Record()
    {
        var counter = _counter ?? _end!.Counter;
        _accounting.Finish(_end! with { Counter = counter, Drained = true }, counter?.Tokens ?? 0);
        Dispose();
    }
}
