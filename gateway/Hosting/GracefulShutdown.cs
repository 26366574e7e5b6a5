using System.ComponentModel.DataAnnotations;
using Gateway.Sessions;
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
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(25);
}

/// <summary>
/// When the host begins to stop (ApplicationStopping: /readyz turns 503 and Kestrel stops accepting),
/// waits for the active streams to finish, up to the drain deadline, then cancels the rest with reason
/// <c>shutdown</c> so each client is told why before Kestrel's own shutdown timeout aborts it.
/// </summary>
internal sealed partial class GracefulShutdown(
    SessionRegistry registry, IOptions<ShutdownOptions> options, IHostApplicationLifetime lifetime, ILogger<GracefulShutdown> logger)
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
        using var deadline = new CancellationTokenSource(options.Value.DrainTimeout);
        try
        {
            await registry.WhenEmptyAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            var cancelled = registry.CancelAll(CancelReason.Shutdown);
            Log.DrainDeadlinePassed(logger, cancelled);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 400, Level = LogLevel.Warning, Message = "Drain deadline passed on shutdown; cancelled {Count} active stream(s)")]
        public static partial void DrainDeadlinePassed(ILogger logger, int count);
    }
}

internal static class GracefulShutdownExtensions
{
    public static IServiceCollection AddGracefulShutdown(this IServiceCollection services)
    {
        services.AddOptions<ShutdownOptions>()
            .BindConfiguration(ShutdownOptions.SectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
        services.AddOptions<HostOptions>().Configure<IOptions<ShutdownOptions>>((host, shutdown) =>
            host.ShutdownTimeout = shutdown.Value.DrainTimeout + TimeSpan.FromSeconds(5));
        services.AddHostedService<GracefulShutdown>();
        return services;
    }
}
