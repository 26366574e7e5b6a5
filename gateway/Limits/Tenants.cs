using Gateway.Sessions;
using Microsoft.Extensions.Options;

namespace Gateway.Limits;

/// <summary>Who a request's limits belong to: the hash of its credential (the same hash that scopes its
/// session keys); without one, its client address when <see cref="RateLimitOptions.Anonymous"/> says
/// so, else nobody (no per-tenant limit).</summary>
internal sealed class Tenants(SessionKeyResolver resolver, IOptions<RateLimitOptions> options)
{
    private readonly bool _anonymousPerAddress = options.Value.Anonymous == AnonymousLimits.PerAddress;

    /// <summary>The request's tenant, or null when no per-tenant limit applies to it.</summary>
    public string? Of(HttpContext context)
    {
        if (resolver.CredentialHash(context) is { } hash)
        {
            return hash;
        }

        return _anonymousPerAddress ? "ip:" + context.Connection.RemoteIpAddress : null;
    }
}
