using Gateway.Limits;
using Gateway.Protocols;
using Gateway.Savings;
using Gateway.Sessions;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.SessionApi;

/// <summary>Endpoints about a caller's own sessions, scoped by the caller's credential exactly as
/// streams are: one tenant can never read or touch another's session.</summary>
internal static class SessionEndpoints
{
    public const string SavingsPath = "/v1/sessions/{sessionId}/savings";

    public static IEndpointRouteBuilder MapSessionEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var cancelPath = endpoints.ServiceProvider.GetRequiredService<IOptions<SessionKeyOptions>>().Value.CancelPath;
        endpoints.MapPost(cancelPath, async (HttpContext context, string sessionId, ISessionRegistry registry,
            SessionKeyResolver resolver, IOptions<SessionKeyOptions> options, ILoggerFactory loggers) =>
        {
            if (SessionKeyResolver.Validate(sessionId, options.Value.MaxKeyBytes) is { } error)
            {
                await OpenAiErrors.WriteResponseAsync(context, InvalidKey(error), context.RequestAborted);
                return;
            }

            // Only the caller's own scope: another tenant's stream with the same id is not found.
            var tenantSession = SessionKey.TenantSessionOf(resolver.Credential(context.Request), sessionId);
            var cancelled = await registry.StopAsync(tenantSession, context.RequestAborted);
            if (cancelled == 0)
            {
                await OpenAiErrors.WriteResponseAsync(context, NotActive, context.RequestAborted);
                return;
            }

            SessionEndpointLog.Stopped(loggers.CreateLogger("Gateway.SessionApi.SessionEndpoints"), cancelled);
            await context.Response.WriteAsJsonAsync(new CancelResponse(sessionId, cancelled),
                SessionJson.Default.CancelResponse, cancellationToken: context.RequestAborted);
        }).RequireRateLimiting(RateLimitOptions.PolicyName); // a stop costs every replica work: it spends the tenant's bucket

        endpoints.MapGet(SavingsPath, async (HttpContext context, string sessionId, SessionSavings savings, SessionKeyResolver resolver,
            IOptions<SessionKeyOptions> options) =>
        {
            if (SessionKeyResolver.Validate(sessionId, options.Value.MaxKeyBytes) is { } error)
            {
                await OpenAiErrors.WriteResponseAsync(context, InvalidKey(error), context.RequestAborted);
                return;
            }

            var totals = savings.Get(SessionKey.TenantSessionOf(resolver.Credential(context.Request), sessionId));
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.WriteAsJsonAsync(new SavingsResponse(sessionId, totals.TokensSaved, totals.Cancellations),
                SessionJson.Default.SavingsResponse, cancellationToken: context.RequestAborted);
        });
        return endpoints;
    }

    private static readonly EndNotice NotActive = new(StatusCodes.Status404NotFound, "invalid_request_error", "session_not_active",
        "No active stream for this session.", shared: true);

    private static EndNotice InvalidKey(string error) => new(StatusCodes.Status400BadRequest, "invalid_request_error", "invalid_session_key", error);
}

internal sealed record SavingsResponse(string SessionId, long TokensSaved, long Cancellations);

internal sealed record CancelResponse(string SessionId, int Cancelled);

internal static partial class SessionEndpointLog
{
    [LoggerMessage(EventId = EventIds.SessionStopped, Level = LogLevel.Information, Message = "Explicit stop ended {Count} stream(s)")]
    public static partial void Stopped(ILogger logger, int count);
}

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(SavingsResponse))]
[System.Text.Json.Serialization.JsonSerializable(typeof(CancelResponse))]
internal sealed partial class SessionJson : System.Text.Json.Serialization.JsonSerializerContext;
