using Gateway.Utilities;
using Microsoft.Extensions.Options;

namespace Gateway.Sessions.Redis;

internal static class SessionRegistryExtensions
{
    /// <summary>The session registry: in-process, or over Redis when <c>Gateway:Sessions:Redis</c> is set.
    /// The in-process <see cref="SessionRegistry"/> is registered either way: it holds this replica's leases.</summary>
    public static IServiceCollection AddSessionRegistry(this IServiceCollection services)
    {
        services.AddGatewayOptions<RedisRegistryOptions>(RedisRegistryOptions.SectionName);
        services.AddSingleton<SessionRegistry>();
        services.AddSingleton<RedisSessionRegistry>();
        services.AddSingleton<ISessionRegistry>(sp => sp.GetRequiredService<IOptions<RedisRegistryOptions>>().Value.Enabled
            ? sp.GetRequiredService<RedisSessionRegistry>()
            : sp.GetRequiredService<SessionRegistry>());
        services.AddHostedService<RedisRegistryStart>();
        return services;
    }

    /// <summary>Starts the Redis registry's background connection with the host; never waits for Redis.</summary>
    private sealed class RedisRegistryStart(ISessionRegistry registry) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken)
        {
            (registry as RedisSessionRegistry)?.Start();
            return Task.CompletedTask;
        }

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
