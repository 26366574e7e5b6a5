using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Gateway.Utilities;

namespace Gateway.Sessions;

/// <summary>The outcome of reading a session key from a request.</summary>
internal readonly record struct SessionKeyResult(SessionKey? Key, string? Error)
{
    public static SessionKeyResult None => default;
    public static SessionKeyResult Invalid(string error) => new(null, error);
}

/// <summary>Reads the session id from the route's key sources, validates it, and scopes it by route and credential.</summary>
internal sealed class SessionKeyResolver(IOptions<SessionKeyOptions> options)
{
    private readonly SessionKeyOptions _options = options.Value;
    private readonly KeySource[] _defaultSources = options.Value.EffectiveSources();
    private readonly ConditionalWeakTable<KeySource[], string[][]> _bodyPaths = new();
    private readonly bool _credentialHasScheme =
        options.Value.CredentialHeader.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
        || options.Value.CredentialHeader.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase);

    /// <summary>Most bytes of a body buffered to find a body key.</summary>
    public int MaxBodyKeyBytes => _options.MaxBodyKeyBytes;

    /// <summary>The sources in force on a route.</summary>
    public KeySource[] SourcesFor(RouteSessionPolicy policy) => policy.Sources ?? _defaultSources;

    /// <summary>The JSON field paths the body peek must look for, in source order.</summary>
    public string[][] BodyPaths(KeySource[] sources) =>
        _bodyPaths.GetValue(sources, static s => [.. s.Where(k => k.Kind == KeySourceKind.Body).Select(k => k.Path)]);

    /// <summary>
    /// <see cref="SessionKey.HashCredential"/> of the request's credential, null without one; hashed once per
    /// request, since the session key, the request limiter, the token budget and the stream slots all ask.
    /// </summary>
    public string? CredentialHash(HttpContext context)
    {
        if (context.Features.Get<HashedCredential>() is { } known)
        {
            return known.Hash;
        }

        var credential = Credential(context.Request);
        var hash = string.IsNullOrEmpty(credential) ? null : SessionKey.HashCredential(credential);
        context.Features.Set(new HashedCredential(hash));
        return hash;
    }

    private sealed record HashedCredential(string? Hash);

    /// <summary>The caller's credential (the configured header's value, see <see cref="NormalizeCredential"/>),
    /// or null when keys are not scoped by one.</summary>
    public string? Credential(HttpRequest request) =>
        _options.CredentialHeader.Length > 0
            ? NormalizeCredential(request.Headers[_options.CredentialHeader].ToString(), _credentialHasScheme)
            : null;

    /// <summary>
    /// One spelling per credential, so one credential is one tenant: the value without surrounding
    /// spaces and tabs; for <c>Authorization</c>-style headers (<paramref name="hasScheme"/>) also the
    /// scheme without regard to case (RFC 9110 §11.1) and one space between it and the credential, which
    /// stays exactly as sent (case-sensitive, as upstreams compare it). A value with no space in it is
    /// taken as a whole.
    /// </summary>
    public static string NormalizeCredential(string value, bool hasScheme)
    {
        var trimmed = value.AsSpan().Trim(" \t");
        var gap = hasScheme ? trimmed.IndexOfAny(' ', '\t') : -1;
        if (gap <= 0)
        {
            return trimmed.Length == value.Length ? value : trimmed.ToString();
        }

        var scheme = trimmed[..gap];
        var credential = trimmed[gap..].TrimStart(" \t");
        if (IsCanonicalScheme(scheme) && credential.Length == trimmed.Length - gap - 1 && trimmed.Length == value.Length)
        {
            return value; // already "Scheme credential": the common case allocates nothing
        }

        var canonical = scheme.Length <= 64 ? stackalloc char[scheme.Length] : new char[scheme.Length];
        canonical[0] = char.ToUpperInvariant(scheme[0]);
        for (var i = 1; i < scheme.Length; i++)
        {
            canonical[i] = char.ToLowerInvariant(scheme[i]);
        }

        return string.Concat(canonical, " ", credential);
    }

    /// <summary>The scheme's first letter upper case, the rest lower (<c>Bearer</c>, <c>Basic</c>): the
    /// spelling most clients send, so their credentials hash as they did before spellings were merged.</summary>
    private static bool IsCanonicalScheme(ReadOnlySpan<char> scheme)
    {
        if (char.ToUpperInvariant(scheme[0]) != scheme[0])
        {
            return false;
        }

        foreach (var c in scheme[1..])
        {
            if (char.ToLowerInvariant(c) != c)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// Tries the sources in order; the first that carries a non-empty value is the session id. A value
    /// sent twice in one source is ambiguous and rejected. No value anywhere: not tracked.
    /// </summary>
    public SessionKeyResult Resolve(HttpRequest request, string routeId, KeySource[] sources, IReadOnlyList<string?> bodyKeys)
    {
        var bodyIndex = 0;
        foreach (var source in sources)
        {
            string? sessionId;
            switch (source.Kind)
            {
                case KeySourceKind.Header:
                case KeySourceKind.Query:
                    var values = source.Kind == KeySourceKind.Header ? request.Headers[source.Name] : request.Query[source.Name];
                    if (values.Count > 1)
                    {
                        return SessionKeyResult.Invalid($"The session key ({source}) was sent more than once; send exactly one value.");
                    }

                    sessionId = values.Count == 1 ? values[0] : null;
                    break;
                case KeySourceKind.Cookie:
                    sessionId = request.Cookies[source.Name];
                    break;
                default:
                    sessionId = bodyIndex < bodyKeys.Count ? bodyKeys[bodyIndex] : null;
                    bodyIndex++;
                    break;
            }

            if (string.IsNullOrWhiteSpace(sessionId))
            {
                // An empty id means "no session" here: the next source is tried.
                continue;
            }

            if (Validate(sessionId, _options.MaxKeyBytes) is { } error)
            {
                return SessionKeyResult.Invalid(error);
            }

            return new SessionKeyResult(SessionKey.FromHash(routeId, CredentialHash(request.HttpContext), sessionId), null);
        }

        return SessionKeyResult.None;
    }

    /// <summary>Null when <paramref name="sessionId"/> is acceptable; else what is wrong with it.</summary>
    public static string? Validate(string sessionId, int maxBytes)
    {
        if (sessionId.Length > maxBytes)
        {
            return $"The session key is longer than {maxBytes} bytes.";
        }

        // Printable ASCII only: control characters could forge log lines, and header bytes above
        // 0x7F have no agreed encoding, so two clients could mean one key by different bytes.
        if (!PrintableAscii.IsAll(sessionId))
        {
            return "The session key must be printable ASCII (no control characters).";
        }

        return null;
    }
}
