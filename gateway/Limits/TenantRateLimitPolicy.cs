using Gateway.Protocols;
using System.Globalization;
using System.Threading.RateLimiting;
using Gateway.Errors;
using Gateway.Sessions;
using Gateway.Streams;
using Gateway.Telemetry;
using Microsoft.AspNetCore.RateLimiting;
using Yarp.ReverseProxy.Model;

namespace Gateway.Limits;

/// <summary>
/// The <c>per-tenant</c> policy: partitions by a hash of the caller's credential (anonymous callers by
/// their address), a token bucket for the request rate and a concurrency limit for open streams.
/// Rejections get 429 with <c>Retry-After</c> and an OpenAI-style error, and are counted.
/// </summary>
internal sealed class TenantRateLimitPolicy(TenantLimits limits, SessionKeyResolver resolver, GatewayMetrics metrics, ModelLabels models)
    : IRateLimiterPolicy<(string Tenant, bool Superseding)>
{
    public Func<OnRejectedContext, CancellationToken, ValueTask>? OnRejected => RejectAsync;

    public RateLimitPartition<(string Tenant, bool Superseding)> GetPartition(HttpContext httpContext)
    {
        var credential = resolver.Credential(httpContext.Request);
        var tenant = string.IsNullOrEmpty(credential)
            ? "ip:" + httpContext.Connection.RemoteIpAddress
            : SessionKey.HashCredential(credential);
        var superseding = httpContext.Features.Get<SessionRequest>()?.Superseding == true;
        return RateLimitPartition.Get((Tenant: tenant, Superseding: superseding), key => new TenantLimiter(key.Item1, key.Item2, limits));
    }

    private async ValueTask RejectAsync(OnRejectedContext context, CancellationToken cancellationToken)
    {
        var http = context.HttpContext;
        var limit = context.Lease.TryGetMetadata(TenantLimits.Limit, out var which) ? which! : "rate";
        var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var after) ? after : TimeSpan.FromSeconds(1);
        var route = http.GetEndpoint()?.Metadata.GetMetadata<RouteModel>()?.Config.RouteId ?? "none";
        var session = http.Features.Get<SessionRequest>();
        metrics.RateLimited(route, models.For(session?.Facts.Model), session?.Adapter.Label ?? ApiAdapters.For(http.Request).Label, limit);

        var message = limit == "concurrency"
            ? "Too many concurrent streams for this credential; wait for one to finish or stop one."
            : "Rate limit reached for this credential; retry after the time in Retry-After.";
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        await OpenAiError.WriteResponseAsync(http, StatusCodes.Status429TooManyRequests, message, "rate_limit_exceeded",
            limit == "concurrency" ? "concurrency_limit_exceeded" : "rate_limit_exceeded", cancellationToken);
    }
}
