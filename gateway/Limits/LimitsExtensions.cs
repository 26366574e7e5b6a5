using Gateway.Utilities;

namespace Gateway.Limits;

internal static class LimitsExtensions
{
    public static IServiceCollection AddTenantLimits(this IServiceCollection services)
    {
        services.AddGatewayOptions<RateLimitOptions>(RateLimitOptions.SectionName);
        services.AddSingleton<TenantLimits>();
        services.AddSingleton<Tenants>();
        services.AddSingleton<LimitRejections>();
        services.AddSingleton(sp => ActivatorUtilities.CreateInstance<TokenBudgets>(sp,
            sp.GetKeyedService<TimeProvider>(TokenBudgets.ClockKey) ?? sp.GetRequiredService<TimeProvider>()));
        services.AddRateLimiter(options =>
        {
            options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            options.AddPolicy<string, TenantRateLimitPolicy>(RateLimitOptions.PolicyName);
        });
        return services;
    }
}
