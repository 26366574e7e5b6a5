namespace Gateway.Health;

/// <summary>Whether the gateway should get new requests: not once SIGTERM arrived (the readiness delay,
/// while the listener still serves) nor once the host stops.</summary>
internal sealed class Readiness(IHostApplicationLifetime lifetime)
{
    private volatile bool _leaving;

    public bool IsReady => !_leaving && !lifetime.ApplicationStopping.IsCancellationRequested;

    /// <summary>From now on <c>/readyz</c> answers 503, so the Service stops routing here.</summary>
    public void Leave() => _leaving = true;
}
