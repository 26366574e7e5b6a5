using System.ComponentModel.DataAnnotations;
using Gateway.Health;
using Gateway.Sessions;
using Gateway.Streams;
using Gateway.Telemetry;
using Gateway.Utilities;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

/// <summary>Graceful shutdown. Bound from <c>Gateway:Shutdown</c>.</summary>
internal sealed class ShutdownOptions
{
    public const string SectionName = "Gateway:Shutdown";

    /// <summary>On SIGTERM, how long active streams may run on; then they are cancelled with reason
    /// <c>shutdown</c> (their clients get the protocol's error event). Keep Kubernetes'
    /// <c>terminationGracePeriodSeconds</c> a few seconds above it.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00", ErrorMessage = "Gateway:Shutdown:DrainTimeout must be between 00:00:00 and 01:00:00.")]
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>On SIGTERM, how long <c>/readyz</c> answers 503 while the listener still accepts and serves,
    /// before the host stops (the listener closes) and the drain begins: time for the Service's endpoints
    /// to drop the pod, so no new connection finds it closed. 0 stops at once. Kubernetes'
    /// <c>preStop</c> sleep should match it, and <c>terminationGracePeriodSeconds</c> cover it plus
    /// <see cref="DrainTimeout"/>.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00", ErrorMessage = "Gateway:Shutdown:ReadinessDelay must be between 00:00:00 and 00:05:00.")]
    public TimeSpan ReadinessDelay { get; set; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// When the host begins to stop (ApplicationStopping: Kestrel stops accepting), waits for every active
/// stream on a session-streams route, keyed or not, to finish, up to the drain deadline; then ends the
/// rest with reason <c>shutdown</c> so each client gets its API's shutdown event before Kestrel's own
/// shutdown timeout aborts it.
/// </summary>
internal sealed partial class GracefulShutdown(
    SessionRegistry registry, ShutdownSignal streams, IOptions<ShutdownOptions> options, IHostApplicationLifetime lifetime,
    TimeProvider time, ILogger<GracefulShutdown> logger)
    : IHostedService
{
    private Task _drain = Task.CompletedTask;

    // The web server stops before other hosted services (it is registered last), waiting for its
    // requests; so the deadline starts from ApplicationStopping, not from this service's StopAsync.
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(() => _drain = DrainAsync());
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _drain.WaitAsync(cancellationToken);

    private async Task DrainAsync()
    {
        using var deadline = new CancellationTokenSource(options.Value.DrainTimeout, time);
        try
        {
            await streams.WhenIdleAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            // Leases first, so a keyed stream's own reason says shutdown; then the token every stream shares.
            registry.CancelAll(StreamOutcome.Shutdown);
            var remaining = streams.Active;
            streams.Cancel();
            Log.DrainDeadlinePassed(logger, remaining);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.DrainDeadlinePassed, Level = LogLevel.Warning, Message = "Drain deadline passed on shutdown; cancelled {Count} active stream(s)")]
        public static partial void DrainDeadlinePassed(ILogger logger, int count);
    }
}

internal static class GracefulShutdownExtensions
{
    public static IServiceCollection AddGracefulShutdown(this IServiceCollection services)
    {
        services.AddGatewayOptions<ShutdownOptions>(ShutdownOptions.SectionName);
        // Counted from StopApplication, after the readiness delay: the drain, then time to write the notices.
        services.AddOptions<HostOptions>().Configure<IOptions<ShutdownOptions>>((host, shutdown) =>
            host.ShutdownTimeout = shutdown.Value.DrainTimeout + TimeSpan.FromSeconds(5));
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<ShutdownSignal>();
        services.AddSingleton<Readiness>();
        services.AddSingleton<IHostLifetime, ReadinessDelayLifetime>(); // replaces ConsoleLifetime (last one wins)
        services.AddHostedService<GracefulShutdown>();
        return services;
    }
}
