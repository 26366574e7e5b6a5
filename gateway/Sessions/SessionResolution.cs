using Gateway.Protocols;
using Yarp.ReverseProxy.Model;

namespace Gateway.Sessions;

/// <summary>
/// Runs after routing and before the rate limiter, on routes with session streams: reads the key
/// (peeking at the body for body sources) once, for the limits (a superseding request takes over its
/// key's slot) and for the session step.
/// </summary>
internal static class SessionResolution
{
    public static IApplicationBuilder UseSessionResolution(this IApplicationBuilder app)
    {
        // Singletons, taken once: asking context.RequestServices would make a DI scope per request
        // (about 1 KB that lives as long as the stream).
        var resolver = app.ApplicationServices.GetRequiredService<SessionKeyResolver>();
        var time = app.ApplicationServices.GetRequiredService<TimeProvider>();
        return app.Use(next => context =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<RouteModel>()?.Config is { } route && RouteSessionPolicy.For(route) is { Enabled: true } policy)
            {
                var resolving = ResolveAsync(context, route.RouteId, policy, resolver, time);
                if (!resolving.IsCompletedSuccessfully)
                {
                    return ResolvedThenAsync(context, resolving, next);
                }

                context.Features.Set(resolving.Result);
            }

            // Not awaited here: a step that awaited the rest would keep its state for the stream's whole life.
            return next(context);
        });
    }

    private static async Task ResolvedThenAsync(HttpContext context, ValueTask<SessionRequest> resolving, RequestDelegate next)
    {
        context.Features.Set(await resolving);
        await next(context);
    }

    /// <summary>Where the arrival of each session-stream request is announced once it is stamped, for
    /// diagnostics and tests (<c>Gateway.SessionRequestArrived</c>; nothing is written without a listener).</summary>
    public static readonly System.Diagnostics.DiagnosticListener Diagnostics = new("Gateway.Sessions");

    public const string ArrivedEvent = "Gateway.SessionRequestArrived";

    public static async ValueTask<SessionRequest> ResolveAsync(HttpContext context, string routeId, RouteSessionPolicy policy,
        SessionKeyResolver resolver, TimeProvider time)
    {
        var arrivedAt = time.GetTimestamp();
        if (Diagnostics.IsEnabled(ArrivedEvent))
        {
            Diagnostics.Write(ArrivedEvent, context);
        }

        var request = context.Request;
        var sources = resolver.SourcesFor(policy);
        var bodyKeys = await BodyKeyPeek.PeekAsync(request, resolver.MaxBodyKeyBytes, resolver.BodyPaths(sources), context.RequestAborted);
        var key = resolver.Resolve(request, routeId, sources, bodyKeys);
        var adapter = ApiAdapters.For(request);
        var facts = adapter.FromPath(request.Path.Value ?? "", request.Query).Or(EarlyFacts(adapter, request));
        return new SessionRequest(facts, key) { Adapter = adapter, ArrivedAt = arrivedAt };
    }

    /// <summary>The facts in the body bytes already received, without waiting for more: enough to label
    /// a request refused before it is forwarded. The whole body is read as it is forwarded.</summary>
    private static RequestFacts EarlyFacts(ApiAdapter adapter, HttpRequest request)
    {
        if (!ApiAdapters.IsJsonBody(request) || !request.BodyReader.TryRead(out var result))
        {
            return RequestFacts.None;
        }

        var scanner = adapter.ScanBody();
        foreach (var segment in result.Buffer)
        {
            scanner.Feed(segment.Span);
        }

        request.BodyReader.AdvanceTo(result.Buffer.Start); // consume nothing
        return adapter.FromBody(scanner);
    }
}
