using Gateway.Sessions;

namespace Gateway.Limits;

/// <summary>Who a request's limits belong to: the hash of its credential (the same hash that scopes its
/// session keys), or, without one, its client address.</summary>
internal sealed class Tenants(SessionKeyResolver resolver)
{
    /// <summary>The request's tenant, or null when no per-tenant limit applies to it.</summary>
    public string? Of(HttpContext context)
    {
        var credential = resolver.Credential(context.Request);
        return string.IsNullOrEmpty(credential)
            ? "ip:" + context.Connection.RemoteIpAddress
            : SessionKey.HashCredential(credential);
    }
}
