using Gateway.Utilities;

namespace Gateway.Sessions;

/// <summary>
/// A session id scoped by route and by a hash of the caller's credential, so two tenants that send
/// the same session id never share a key. The raw credential is never kept.
/// </summary>
internal readonly record struct SessionKey
{
    private SessionKey(string value, string tenantSession)
    {
        Value = value;
        TenantSession = tenantSession;
    }

    /// <summary>The scoped key: route, credential hash and session id joined by newlines (which a
    /// header value cannot contain, so the parts cannot run into each other).</summary>
    public string Value { get; }

    /// <summary>The credential hash and session id without the route: what a caller may stop or
    /// ask about on every route at once.</summary>
    public string TenantSession { get; }

    public static SessionKey Create(string routeId, string? credential, string sessionId) =>
        FromHash(routeId, string.IsNullOrEmpty(credential) ? null : HashCredential(credential), sessionId);

    /// <summary><see cref="Create"/> from the credential's <see cref="HashCredential"/> already taken (null: none).</summary>
    public static SessionKey FromHash(string routeId, string? credentialHash, string sessionId)
    {
        var tenantSession = $"{credentialHash ?? Anonymous}\n{sessionId}";
        return new(ValueOf(routeId, tenantSession), tenantSession);
    }

    /// <summary>The <see cref="Value"/> of <paramref name="tenantSession"/>'s key on <paramref name="routeId"/>.</summary>
    public static string ValueOf(string routeId, string tenantSession) => $"{routeId}\n{tenantSession}";

    /// <summary>The route-free scope of <paramref name="sessionId"/> for a caller with <paramref name="credential"/>.</summary>
    public static string TenantSessionOf(string? credential, string sessionId) => $"{HashCredential(credential)}\n{sessionId}";

    /// <summary>A short, stable, non-reversible fingerprint for logs; never the session id itself.</summary>
    public string Fingerprint() => Hashes.Sha256Hex(Value, 6);

    private const string Anonymous = "anonymous";

    /// <summary>Hex of the first 16 bytes of SHA-256 over the credential; "anonymous" without one.</summary>
    public static string HashCredential(string? credential)
    {
        if (string.IsNullOrEmpty(credential))
        {
            return Anonymous;
        }

        return Hashes.Sha256Hex(credential, 16);
    }

    public override string ToString() => Fingerprint();
}
