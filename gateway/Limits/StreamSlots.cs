using Gateway.Sessions;
using Microsoft.AspNetCore.RateLimiting;
using Yarp.ReverseProxy.Model;

namespace Gateway.Limits;

/// <summary>
/// The concurrent-stream half of the <c>per-tenant</c> policy, after ASP.NET's rate limiter (which spends
/// the bucket) and before the proxy: a request on a route with the policy holds one of its tenant's
/// <see cref="TenantSlots"/> while it is in flight. Done here rather than in the rate limiter's partition
/// because the slot depends on the request's session key, which a <see cref="System.Threading.RateLimiting.RateLimiter"/> never sees.
/// </summary>
internal static class StreamSlots
{
    public static IApplicationBuilder UseStreamSlots(this IApplicationBuilder app)
    {
        var limits = app.ApplicationServices.GetRequiredService<TenantLimits>();
        var tenants = app.ApplicationServices.GetRequiredService<Tenants>();
        var rejections = app.ApplicationServices.GetRequiredService<LimitRejections>();
        return app.Use(async (context, next) =>
        {
            if (!Limited(context.GetEndpoint()) || tenants.Of(context) is not { } tenant)
            {
                await next(context);
                return;
            }

            var key = context.Features.Get<SessionRequest>()?.Key.Key?.Value;
            var state = limits.Acquire(tenant);
            try
            {
                if (!state.Slots.TryTake(key))
                {
                    await rejections.WriteAsync(context, LimitRejections.Concurrency, retryAfter: null, context.RequestAborted);
                    return;
                }

                try
                {
                    await next(context);
                }
                finally
                {
                    state.Slots.Return(key);
                }
            }
            finally
            {
                limits.Release(tenant, state);
            }
        });
    }

    /// <summary>A proxied route whose YARP config names the <c>per-tenant</c> policy.</summary>
    internal static bool Limited(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<RouteModel>() is not null
        && endpoint.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName == RateLimitOptions.PolicyName
        && endpoint.Metadata.GetMetadata<DisableRateLimitingAttribute>() is null;
}
