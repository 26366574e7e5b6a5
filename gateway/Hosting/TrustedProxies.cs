using System.ComponentModel.DataAnnotations;
using System.Net;
using Gateway.Utilities;
using Microsoft.AspNetCore.HttpOverrides;
using IPNetwork = System.Net.IPNetwork;
using Microsoft.Extensions.Options;

namespace Gateway.Hosting;

/// <summary>
/// The proxies (an ingress, a load balancer) whose <c>X-Forwarded-For</c> names the real client. Bound
/// from <c>Gateway:ForwardedHeaders</c>. Empty (default): the header is ignored and a caller's address is
/// its connection's, so no caller can name itself a fresh address to dodge a per-address limit.
/// </summary>
internal sealed class TrustedProxyOptions : IValidatableObject
{
    public const string SectionName = "Gateway:ForwardedHeaders";

    /// <summary>Addresses of trusted proxies, e.g. <c>10.0.0.5</c>.</summary>
    public string[] KnownProxies { get; set; } = [];

    /// <summary>Networks of trusted proxies in CIDR notation, e.g. <c>10.0.0.0/8</c>.</summary>
    public string[] KnownNetworks { get; set; } = [];

    public bool Enabled => KnownProxies.Length > 0 || KnownNetworks.Length > 0;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        for (var i = 0; i < KnownProxies.Length; i++)
        {
            if (!IPAddress.TryParse(KnownProxies[i], out _))
            {
                yield return new ValidationResult($"Gateway:ForwardedHeaders:KnownProxies:{i} is not an IP address.");
            }
        }

        for (var i = 0; i < KnownNetworks.Length; i++)
        {
            if (!IPNetwork.TryParse(KnownNetworks[i], out _))
            {
                yield return new ValidationResult($"Gateway:ForwardedHeaders:KnownNetworks:{i} is not a network in CIDR notation (10.0.0.0/8).");
            }
        }
    }
}

internal static class TrustedProxies
{
    public static IServiceCollection AddTrustedProxies(this IServiceCollection services)
    {
        services.AddGatewayOptions<TrustedProxyOptions>(TrustedProxyOptions.SectionName);
        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<TrustedProxyOptions>>((forwarded, trusted) =>
        {
            forwarded.ForwardedHeaders = ForwardedHeaders.XForwardedFor;
            // Exactly the configured proxies (the framework trusts loopback by default), walked back from the
            // connection through every trusted hop to the first address that is not one.
            forwarded.KnownProxies.Clear();
            forwarded.KnownIPNetworks.Clear();
            forwarded.ForwardLimit = null;
            foreach (var proxy in trusted.Value.KnownProxies)
            {
                forwarded.KnownProxies.Add(IPAddress.Parse(proxy));
            }

            foreach (var network in trusted.Value.KnownNetworks)
            {
                forwarded.KnownIPNetworks.Add(IPNetwork.Parse(network));
            }
        });
        return services;
    }

    /// <summary>The client address from <c>X-Forwarded-For</c>, for connections from a trusted proxy only;
    /// nothing at all when none is configured.</summary>
    public static IApplicationBuilder UseTrustedProxies(this IApplicationBuilder app) =>
        app.ApplicationServices.GetRequiredService<IOptions<TrustedProxyOptions>>().Value.Enabled
            ? app.UseForwardedHeaders()
            : app;
}
