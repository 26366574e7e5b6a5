using Gateway.Utilities;

namespace Gateway.Redis;

internal static class RedisExtensions
{
    /// <summary>Registers <see cref="SharedRedis"/> (options from <c>Gateway:Sessions</c>), the one connection every
    /// feature that shares state across replicas takes; it is started by the session registry's start.</summary>
    public static IServiceCollection AddSharedRedis(this IServiceCollection services)
    {
        services.AddGatewayOptions<RedisOptions>(RedisOptions.SectionName);
        services.AddSingleton<SharedRedis>();
        return services;
    }
}
