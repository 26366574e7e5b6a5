using System.Globalization;
using Gateway.Protocols;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;
using Yarp.ReverseProxy.Model;

namespace Gateway.Limits;

/// <summary>A request over one of its tenant's limits: 429 with <c>Retry-After</c> and an error naming the
/// limit in the shape of the request's API (OpenAI's for the gateway's own endpoints), counted by route,
/// model, API and limit.</summary>
internal sealed class LimitRejections(GatewayMetrics metrics, ModelLabels models, UsageRecords usage, SessionKeyResolver resolver, TimeProvider time)
{
    /// <summary>The request rate (the tenant's bucket).</summary>
    public const string Rate = "rate";

    /// <summary>The concurrent streams (the tenant's slots).</summary>
    public const string Concurrency = "concurrency";

    /// <summary>The tokens per minute (the tenant's token budget).</summary>
    public const string Tokens = "tokens";

    public async ValueTask WriteAsync(HttpContext http, string limit, TimeSpan? retryAfter, CancellationToken cancellationToken)
    {
        var route = http.GetEndpoint()?.Metadata.GetMetadata<RouteModel>()?.Config.RouteId ?? "none";
        var session = http.Features.Get<SessionRequest>();
        var adapter = session?.Adapter ?? ApiAdapters.For(http.Request);
        metrics.RateLimited(route, models.For(session?.Facts.Model), adapter.Label, limit);

        var (code, message) = limit switch
        {
            Concurrency => ("concurrency_limit_exceeded", "Too many concurrent streams for this credential; wait for one to finish or stop one."),
            Tokens => ("token_limit_exceeded", "Token budget for this credential is spent; retry after the time in Retry-After."),
            _ => ("rate_limit_exceeded", "Rate limit reached for this credential; retry after the time in Retry-After."),
        };
        var after = retryAfter ?? TimeSpan.FromSeconds(1);
        http.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        var notice = new EndNotice(StatusCodes.Status429TooManyRequests, "rate_limit_exceeded", code, message);
        await adapter.WriteErrorResponseAsync(http, notice, cancellationToken);
        var waited = session?.ArrivedAt is { } arrivedAt ? time.GetElapsedTime(arrivedAt) : TimeSpan.Zero;
        usage.Ended(route, adapter.Label, StreamOutcome.RateLimited,
            UsageSubject.Of(resolver.CredentialHash(http), session?.Key.Key?.Fingerprint(), session?.Facts.Model, waited));
    }
}
