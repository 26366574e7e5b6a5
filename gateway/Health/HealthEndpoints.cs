namespace Gateway.Health;

/// <summary>Kubernetes probes: <c>/healthz</c> says the process serves requests; <c>/readyz</c> says it
/// should get new ones, and turns 503 as soon as shutdown begins so the Service stops routing here
/// while active streams drain.</summary>
internal static class HealthEndpoints
{
    public const string LivePath = "/healthz";
    public const string ReadyPath = "/readyz";

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet(LivePath, () => Results.Text("ok"));
        endpoints.MapGet(ReadyPath, (IHostApplicationLifetime lifetime) =>
            lifetime.ApplicationStopping.IsCancellationRequested
                ? Results.Text("stopping", statusCode: StatusCodes.Status503ServiceUnavailable)
                : Results.Text("ready"));
        return endpoints;
    }
}
