using Gateway.Tokens;

namespace Gateway.Limits;

/// <summary>
/// The token half of the <c>per-tenant</c> policy, after the request rate and before the stream slots: a
/// request whose tenant has spent its <see cref="RateLimitOptions.TokensPerMinute"/> gets 429
/// <c>token_limit_exceeded</c> with <c>Retry-After</c> and never reaches the model; an admitted one is
/// charged what its stream spends, while it runs and at its end. A running stream is never cut.
/// </summary>
internal static class TokenBudgetStep
{
    public static IApplicationBuilder UseTokenBudgets(this IApplicationBuilder app)
    {
        var budgets = app.ApplicationServices.GetRequiredService<TokenBudgets>();
        if (!budgets.Enabled)
        {
            return app;
        }

        var tenants = app.ApplicationServices.GetRequiredService<Tenants>();
        var rejections = app.ApplicationServices.GetRequiredService<LimitRejections>();
        return app.Use(async (context, next) =>
        {
            if (!StreamSlots.Limited(context.GetEndpoint()) || tenants.Of(context) is not { } tenant)
            {
                await next(context);
                return;
            }

            var decision = await budgets.CheckAsync(tenant);
            if (!decision.Admitted)
            {
                await rejections.WriteAsync(context, LimitRejections.Tokens, decision.RetryAfter, context.RequestAborted);
                return;
            }

            var tokens = new StreamTokens();
            context.Features.Set(tokens);
            var charge = budgets.StartCharging(tenant, tokens);
            try
            {
                await next(context);
            }
            finally
            {
                // Before the response completes, so the tenant's next request, on any replica, sees the charge.
                await charge.EndAsync();
            }
        });
    }
}
