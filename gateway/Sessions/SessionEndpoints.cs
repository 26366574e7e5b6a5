using Gateway.Errors;
using Gateway.Savings;
using Microsoft.Extensions.Options;

namespace Gateway.Sessions;

/// <summary>Endpoints about a caller's own sessions, scoped by the caller's credential exactly as
/// streams are: one tenant can never read or touch another's session.</summary>
internal static class SessionEndpoints
{
    public const string SavingsPath = "/v1/sessions/{sessionId}/savings";

    public static IEndpointRouteBuilder MapSessionEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet(SavingsPath, async (HttpContext context, string sessionId, SessionSavings savings, IOptions<SessionKeyOptions> options) =>
        {
            if (SessionKeyResolver.Validate(sessionId, options.Value.MaxKeyBytes) is { } error)
            {
                await OpenAiError.WriteResponseAsync(context, StatusCodes.Status400BadRequest, error,
                    "invalid_request_error", "invalid_session_key", context.RequestAborted);
                return;
            }

            var credential = options.Value.CredentialHeader.Length > 0 ? context.Request.Headers[options.Value.CredentialHeader].ToString() : null;
            var totals = savings.Get(SessionKey.TenantSessionOf(credential, sessionId));
            context.Response.Headers.CacheControl = "no-store";
            await context.Response.WriteAsJsonAsync(new SavingsResponse(sessionId, totals.TokensSaved, totals.Cancellations),
                SessionJson.Default.SavingsResponse, cancellationToken: context.RequestAborted);
        });
        return endpoints;
    }
}

internal sealed record SavingsResponse(string SessionId, long TokensSaved, long Cancellations);

[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.CamelCase)]
[System.Text.Json.Serialization.JsonSerializable(typeof(SavingsResponse))]
internal sealed partial class SessionJson : System.Text.Json.Serialization.JsonSerializerContext;
