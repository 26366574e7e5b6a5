using Gateway.Telemetry;

namespace Gateway.Streams;

/// <summary>
/// One stream in the active-streams gauge, counted once its request has gone upstream whole (when
/// its model, read from the whole body, is known) and uncounted with the same labels when it ends,
/// whichever thread gets there first.
/// </summary>
internal sealed class ActiveStream(GatewayMetrics metrics, string route, string api)
{
    private const int NotStarted = 0, Started = 1, Ended = 2;
    private int _state;
    private string _model = ModelLabels.Unknown;

    public void Start(string model)
    {
        _model = model;
        if (Interlocked.CompareExchange(ref _state, Started, NotStarted) == NotStarted)
        {
            metrics.StreamStarted(route, model, api);
        }
    }

    public void End()
    {
        if (Interlocked.Exchange(ref _state, Ended) == Started)
        {
            metrics.StreamStopped(route, _model, api);
        }
    }
}
