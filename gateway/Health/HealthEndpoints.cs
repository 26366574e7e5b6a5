namespace Gateway.Health;

/// <summary>Kubernetes probes: <c>/healthz</c> says the process serves requests; <c>/readyz</c> says it
/// should get new ones, and turns 503 as soon as SIGTERM arrives, while the listener still serves for
/// the readiness delay, so the Service stops routing here before the listener closes and streams drain.</summary>
internal static class HealthEndpoints
{
    public const string LivePath = "/healthz";
    public const string ReadyPath = "/readyz";

    public static IEndpointRouteBuilder MapHealth(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet(LivePath, () => Results.Text("ok"));
        endpoints.MapGet(ReadyPath, (Readiness readiness) =>
            readiness.IsReady
                ? Results.Text("ready")
                : Results.Text("stopping", statusCode: StatusCodes.Status503ServiceUnavailable));
        return endpoints;
    }
}
