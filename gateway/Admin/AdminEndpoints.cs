using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Gateway.Sessions;
using Gateway.Telemetry;
using Gateway.Utilities;
using Microsoft.Extensions.Options;

namespace Gateway.Admin;

/// <summary>
/// <c>GET /admin/streams</c> lists the active streams (route, model, age, tokens so far, a fingerprint
/// of the key; never a prompt, a session id or a credential); <c>DELETE /admin/streams/{id}</c> stops
/// one. Mapped only when <c>Gateway:Admin:Token</c> is set, and every call must carry it as a bearer token.
/// </summary>
internal static class AdminEndpoints
{
    public static IServiceCollection AddAdmin(this IServiceCollection services)
    {
        services.AddGatewayOptions<AdminOptions>(AdminOptions.SectionName);
        return services;
    }

    public static IEndpointRouteBuilder MapAdmin(this IEndpointRouteBuilder endpoints)
    {
        var token = endpoints.ServiceProvider.GetRequiredService<IOptions<AdminOptions>>().Value.Token;
        if (token.Length == 0)
        {
            return endpoints;
        }

        var expected = Encoding.UTF8.GetBytes("Bearer " + token);
        var admin = endpoints.MapGroup("/admin").AddEndpointFilter(async (context, next) =>
        {
            var presented = Encoding.UTF8.GetBytes(context.HttpContext.Request.Headers.Authorization.ToString());
            if (!CryptographicOperations.FixedTimeEquals(presented, expected))
            {
                context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
                return Results.Json(new AdminError("A valid admin bearer token is required."), AdminJson.Default.AdminError,
                    statusCode: StatusCodes.Status401Unauthorized);
            }

            return await next(context);
        });

        admin.MapGet("/streams", (SessionRegistry registry, TimeProvider time) =>
        {
            var now = time.GetTimestamp();
            var streams = registry.Snapshot()
                .Select(l => new AdminStream(l.Id, l.Route, l.Model, Math.Round(time.GetElapsedTime(l.StartedAt, now).TotalSeconds, 3),
                    l.TokensSoFar, l.Key.Fingerprint(), l.Reason == StreamOutcome.None ? null : l.Reason.ToLabel()))
                .OrderBy(s => s.Id)
                .ToArray();
            return Results.Json(streams, AdminJson.Default.AdminStreamArray);
        });

        admin.MapDelete("/streams/{id:long}", (long id, SessionRegistry registry) =>
            registry.Cancel(id, StreamOutcome.Stopped)
                ? Results.NoContent()
                : Results.Json(new AdminError("No active stream with this id."), AdminJson.Default.AdminError, statusCode: StatusCodes.Status404NotFound));
        return endpoints;
    }
}

internal sealed record AdminStream(long Id, string Route, string Model, double AgeSeconds, long Tokens, string Key, string? Cancelled);

internal sealed record AdminError(string Error);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AdminStream[]))]
[JsonSerializable(typeof(AdminError))]
internal sealed partial class AdminJson : JsonSerializerContext;
