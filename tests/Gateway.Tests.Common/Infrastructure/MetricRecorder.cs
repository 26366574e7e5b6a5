using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Gateway.Tests.Infrastructure;

/// <summary>One measurement the gateway recorded, with its tags.</summary>
internal sealed record Measured(string Instrument, double Value, IReadOnlyDictionary<string, string?> Tags)
{
    public string? this[string tag] => Tags.TryGetValue(tag, out var value) ? value : null;
}

/// <summary>
/// Every measurement of the gateway's meter on one route, as it is recorded: what a test asserts the
/// metrics say. A test gives its route a unique id, since in-process hosts share meter names.
/// </summary>
internal sealed class MetricRecorder : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly string _route;
    private readonly ConcurrentQueue<Measured> _measured = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public MetricRecorder(string route)
    {
        _route = route;
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == "LlmGateway")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => OnMeasurement(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => OnMeasurement(instrument, value, tags));
        _listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) => OnMeasurement(instrument, value, tags));
        _listener.Start();
    }

    public IReadOnlyList<Measured> All(string instrument) => [.. _measured.Where(m => m.Instrument == instrument)];

    /// <summary>Waits until some measurement of <paramref name="instrument"/> matches; returns it.</summary>
    public async Task<Measured> WaitForAsync(string instrument, Func<Measured, bool>? predicate = null)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (_measured.FirstOrDefault(m => m.Instrument == instrument && (predicate?.Invoke(m) ?? true)) is { } found)
            {
                return found;
            }

            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"No {instrument} measurement on route {_route} matched; saw: "
                    + string.Join("; ", _measured.Select(m => $"{m.Instrument}={m.Value} [{string.Join(",", m.Tags.Select(t => $"{t.Key}={t.Value}"))}]")));
            }
        }
    }

    public void Dispose() => _listener.Dispose();

    private void OnMeasurement(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var dictionary = new Dictionary<string, string?>();
        foreach (var tag in tags)
        {
            dictionary[tag.Key] = tag.Value?.ToString();
        }

        if (dictionary.TryGetValue("route", out var route) && route == _route)
        {
            _measured.Enqueue(new Measured(instrument.Name, value, dictionary));
            Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }
}
