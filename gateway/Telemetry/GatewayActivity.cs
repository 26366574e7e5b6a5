using System.Diagnostics;

namespace Gateway.Telemetry;

/// <summary>The gateway's trace source: one span per session stream, under ASP.NET Core's request span.</summary>
internal static class GatewayActivity
{
    public const string SourceName = "LlmGateway";

    public static readonly ActivitySource Source = new(SourceName);
}
