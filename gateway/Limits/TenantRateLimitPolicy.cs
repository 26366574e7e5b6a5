using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;

namespace Gateway.Limits;

/// <summary>
/// The <c>per-tenant</c> policy's request rate: one token bucket per tenant (see <see cref="Tenants"/>).
/// Its concurrent streams are <see cref="StreamLimits"/>'. Rejections get 429 with <c>Retry-After</c>
/// and an OpenAI-style error, and are counted.
/// </summary>
internal sealed class TenantRateLimitPolicy(TenantLimits limits, Tenants tenants, LimitRejections rejections) : IRateLimiterPolicy<string>
{
    public Func<OnRejectedContext, CancellationToken, ValueTask>? OnRejected => RejectAsync;

    public RateLimitPartition<string> GetPartition(HttpContext httpContext) =>
        tenants.Of(httpContext) is { } tenant
            ? RateLimitPartition.Get(tenant, key => new TenantLimiter(key, limits))
            : RateLimitPartition.GetNoLimiter("");

    private ValueTask RejectAsync(OnRejectedContext context, CancellationToken cancellationToken) =>
        rejections.WriteAsync(context.HttpContext, LimitRejections.Rate,
            context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : null, cancellationToken);
}
