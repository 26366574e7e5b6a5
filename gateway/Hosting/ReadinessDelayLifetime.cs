using System.Runtime.InteropServices;
using Gateway.Health;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

/// <summary>
/// The host's lifetime, in place of <c>ConsoleLifetime</c>. On SIGTERM <c>/readyz</c> turns 503 at once
/// while the listener still accepts and serves; after <see cref="ShutdownOptions.ReadinessDelay"/> (time
/// for the endpoints controller and every kube-proxy to drop the pod) the host stops and streams drain.
/// SIGINT and SIGQUIT (a terminal's Ctrl+C) stop at once, as before.
/// <para>
/// Why a lifetime and not one more <see cref="PosixSignalRegistration"/> beside ConsoleLifetime's: every
/// registration for a signal runs, and ConsoleLifetime's stops the host at once, which closes the
/// listener. It also leaves out ConsoleLifetime's "Application started. Press Ctrl+C" lines; Kestrel's
/// "Now listening on" stays.
/// </para>
/// </summary>
internal sealed partial class ReadinessDelayLifetime(
    IHostApplicationLifetime lifetime, Readiness readiness, IOptions<ShutdownOptions> options, TimeProvider time,
    ILogger<ReadinessDelayLifetime> logger)
    : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> _signals = [];
    private int _terminated;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        if (!OperatingSystem.IsBrowser())
        {
            _signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnTerminate));
            _signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGINT, OnInterrupt));
            _signals.Add(PosixSignalRegistration.Create(PosixSignal.SIGQUIT, OnInterrupt));
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void OnInterrupt(PosixSignalContext context)
    {
        context.Cancel = true;
        lifetime.StopApplication();
    }

    private void OnTerminate(PosixSignalContext context)
    {
        context.Cancel = true; // the default would end the process; the host ends it once drained
        if (Interlocked.Exchange(ref _terminated, 1) == 1)
        {
            return;
        }

        readiness.Leave();
        var delay = options.Value.ReadinessDelay;
        Log.LeavingRotation(logger, delay.TotalSeconds);
        _ = StopAfterAsync(delay);
    }

    private async Task StopAfterAsync(TimeSpan delay)
    {
        try
        {
            // Ends early when something else (SIGINT, the app itself) stops the host first.
            await Task.Delay(delay, time, lifetime.ApplicationStopping);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        Log.Stopping(logger);
        lifetime.StopApplication();
    }

    public void Dispose()
    {
        foreach (var signal in _signals)
        {
            signal.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.LeavingRotation, Level = LogLevel.Information, Message = "SIGTERM received; /readyz answers 503 and the listener serves on for {DelaySeconds} s before the gateway stops")]
        public static partial void LeavingRotation(ILogger logger, double delaySeconds);

        [LoggerMessage(EventId = EventIds.HostStopping, Level = LogLevel.Information, Message = "Readiness delay over; stopping: the listener closes and active streams drain")]
        public static partial void Stopping(ILogger logger);
    }
}
