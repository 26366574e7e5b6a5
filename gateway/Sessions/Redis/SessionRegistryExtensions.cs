using Gateway.Redis;
using Microsoft.Extensions.Options;

namespace Gateway.Sessions.Redis;

internal static class SessionRegistryExtensions
{
    /// <summary>The session registry: in-process, or over Redis when <c>Gateway:Sessions:Redis</c> is set.
    /// The in-process <see cref="SessionRegistry"/> is registered either way: it holds this replica's leases.</summary>
    public static IServiceCollection AddSessionRegistry(this IServiceCollection services)
    {
        services.AddSharedRedis();
        services.AddSingleton<SessionRegistry>();
        services.AddSingleton<RedisSessionRegistry>();
        services.AddSingleton<ISessionRegistry>(sp => sp.GetRequiredService<IOptions<RedisOptions>>().Value.Enabled
            ? sp.GetRequiredService<RedisSessionRegistry>()
            : sp.GetRequiredService<SessionRegistry>());
        services.AddHostedService<RedisRegistryStart>();
        return services;
    }

    /// <summary>Starts the shared Redis connection with the host, once the registry listens on it (resolving the
    /// registry registers its message reader and upkeep); never waits for Redis.</summary>
    private sealed class RedisRegistryStart(ISessionRegistry registry, SharedRedis redis) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            GC.KeepAlive(registry);
            redis.Start();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
