using Gateway.Sessions;
using Gateway.Tokens;
using Microsoft.AspNetCore.RateLimiting;
using Yarp.ReverseProxy.Model;

namespace Gateway.Limits;

/// <summary>
/// The per-stream half of the <c>per-tenant</c> policy, after ASP.NET's rate limiter (which spends the
/// request bucket) and before the proxy, as one step:
/// <list type="number">
/// <item>the token budget: a request whose tenant has spent its <see cref="RateLimitOptions.TokensPerMinute"/>
/// gets 429 <c>token_limit_exceeded</c> with <c>Retry-After</c> and never reaches the model;</item>
/// <item>the stream slots: an admitted request holds one of its tenant's <see cref="TenantSlots"/> while it
/// is in flight, or gets 429 when they are all taken (the slot depends on the request's session key, which
/// a <see cref="System.Threading.RateLimiting.RateLimiter"/> never sees);</item>
/// <item>a stream holding a slot is charged what it spends, while it runs and at its end. A running
/// stream is never cut.</item>
/// </list>
/// One step rather than two: each awaits the proxy for the stream's whole life, and every awaiting step
/// keeps its state per stream and hops once more when the stream ends (docs/performance.md).
/// </summary>
internal static class StreamLimits
{
    public static IApplicationBuilder UseStreamLimits(this IApplicationBuilder app)
    {
        var limits = app.ApplicationServices.GetRequiredService<TenantLimits>();
        var tenants = app.ApplicationServices.GetRequiredService<Tenants>();
        var rejections = app.ApplicationServices.GetRequiredService<LimitRejections>();
        var budgets = app.ApplicationServices.GetRequiredService<TokenBudgets>();
        return app.Use((context, next) =>
            Limited(context.GetEndpoint()) && tenants.Of(context) is { } tenant
                ? LimitAsync(context, next, tenant, limits, budgets, rejections)
                : next(context));
    }

    private static async Task LimitAsync(HttpContext context, RequestDelegate next, string tenant,
        TenantLimits limits, TokenBudgets budgets, LimitRejections rejections)
    {
        if (budgets.Enabled)
        {
            var decision = await budgets.CheckAsync(tenant);
            if (!decision.Admitted)
            {
                await rejections.WriteAsync(context, LimitRejections.Tokens, decision.RetryAfter, context.RequestAborted);
                return;
            }
        }

        var key = context.Features.Get<SessionRequest>()?.Key.Key?.Value;
        var state = limits.Acquire(tenant);
        TokenBudgets.Charge? charge = null;
        try
        {
            if (!state.Slots.TryTake(key))
            {
                await rejections.WriteAsync(context, LimitRejections.Concurrency, retryAfter: null, context.RequestAborted);
                return;
            }

            try
            {
                if (budgets.Enabled)
                {
                    var tokens = new StreamTokens();
                    context.Features.Set(tokens);
                    charge = budgets.StartCharging(tenant, tokens);
                }

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
            if (charge is not null)
            {
                // Before the response completes, so the tenant's next request, on any replica, sees the charge.
                await charge.EndAsync();
            }
        }
    }

    /// <summary>A proxied route whose YARP config names the <c>per-tenant</c> policy.</summary>
    internal static bool Limited(Endpoint? endpoint) =>
        endpoint?.Metadata.GetMetadata<RouteModel>() is not null
        && endpoint.Metadata.GetMetadata<EnableRateLimitingAttribute>()?.PolicyName == RateLimitOptions.PolicyName
        && endpoint.Metadata.GetMetadata<DisableRateLimitingAttribute>() is null;
}
