using Gateway.Protocols;
using Gateway.Sessions;
using Yarp.ReverseProxy.Model;

namespace Gateway.Streams;

/// <summary>What the gateway learned about a request before limits and forwarding: its API, the facts
/// known so far (from the path and the body bytes already received), and its session key (or why it
/// has none).</summary>
internal sealed record SessionRequest(RequestFacts Facts, SessionKeyResult Key)
{
    public ApiAdapter Adapter { get; init; } = ApiAdapters.Other;
}

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
        var registry = app.ApplicationServices.GetRequiredService<ISessionRegistry>();
        return app.Use(async (context, next) =>
        {
            if (context.GetEndpoint()?.Metadata.GetMetadata<RouteModel>()?.Config is { } route && RouteSessionPolicy.For(route) is { Enabled: true } policy)
            {
                context.Features.Set(await ResolveAsync(context, route.RouteId, policy, resolver, registry));
            }

            await next(context);
        });
    }

    public static async ValueTask<SessionRequest> ResolveAsync(HttpContext context, string routeId, RouteSessionPolicy policy,
        SessionKeyResolver resolver, ISessionRegistry registry)
    {
        var request = context.Request;
        var sources = resolver.SourcesFor(policy);
        var bodyKeys = await BodyKeyPeek.PeekAsync(request, resolver.MaxBodyKeyBytes, resolver.BodyPaths(sources), context.RequestAborted);
        var key = resolver.Resolve(request, routeId, sources, bodyKeys);
        var adapter = ApiAdapters.For(request);
        var facts = adapter.FromPath(request.Path.Value ?? "", request.Query).Or(EarlyFacts(adapter, request));
        return new SessionRequest(facts, key) { Adapter = adapter };
    }

    /// <summary>The facts in the body bytes already received, without waiting for more: enough to label
    /// a request refused before it is forwarded. The whole body is read as it is forwarded.</summary>
    private static RequestFacts EarlyFacts(ApiAdapter adapter, HttpRequest request)
    {
        if (!RequestBodyTap.IsJsonBody(request) || !request.BodyReader.TryRead(out var result))
        {
            return RequestFacts.None;
        }

        var scanner = new BodyScanner();
        foreach (var segment in result.Buffer)
        {
            scanner.Feed(segment.Span);
        }

        request.BodyReader.AdvanceTo(result.Buffer.Start); // consume nothing
        return adapter.FromBody(scanner);
    }
}
