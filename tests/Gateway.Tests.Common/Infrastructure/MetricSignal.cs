using System.Diagnostics.Metrics;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// Completes when the gateway records a measurement on an instrument with a given route tag: the
/// signal that a stream's accounting is done, since a dropped client sees no end of its own.
/// </summary>
internal sealed class MetricSignal : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _instrument;
    private readonly string _route;
    private readonly int _count;
    private readonly TaskCompletionSource _reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _seen;

    public MetricSignal(string instrument, string route, int count = 1)
    {
        _instrument = instrument;
        _route = route;
        _count = count;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "LlmGateway" && instrument.Name == _instrument)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, _, tags, _) => OnMeasurement(tags));
        _listener.SetMeasurementEventCallback<double>((_, _, tags, _) => OnMeasurement(tags));
        _listener.Start();
    }

    public Task WaitAsync() => _reached.Task.WaitAsync(Wait.Timeout);

    public void Dispose() => _listener.Dispose();

    private void OnMeasurement(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        foreach (var tag in tags)
        {
            if (tag.Key == "route" && (tag.Value as string) == _route)
            {
                if (Interlocked.Increment(ref _seen) >= _count)
                {
                    _reached.TrySetResult();
                }

                return;
            }
        }
    }
}
