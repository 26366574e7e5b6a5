using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;

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

    /// <summary>Most bytes of a body buffered to find a body key.</summary>
    public int MaxBodyKeyBytes => _options.MaxBodyKeyBytes;

    /// <summary>The sources in force on a route.</summary>
    public KeySource[] SourcesFor(RouteSessionPolicy policy) => policy.Sources ?? _defaultSources;

    /// <summary>The JSON field paths the body peek must look for, in source order.</summary>
    public string[][] BodyPaths(KeySource[] sources) =>
        _bodyPaths.GetValue(sources, static s => [.. s.Where(k => k.Kind == KeySourceKind.Body).Select(k => k.Path)]);

    /// <summary>The caller's credential (the configured header's value), or null when keys are not scoped by one.</summary>
    public string? Credential(HttpRequest request) =>
        _options.CredentialHeader.Length > 0 ? request.Headers[_options.CredentialHeader].ToString() : null;

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

            return new SessionKeyResult(SessionKey.Create(routeId, Credential(request), sessionId), null);
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

        foreach (var c in sessionId)
        {
            // Printable ASCII only: control characters could forge log lines, and header bytes above
            // 0x7F have no agreed encoding, so two clients could mean one key by different bytes.
            if (c is < ' ' or > '~')
            {
                return "The session key must be printable ASCII (no control characters).";
            }
        }

        return null;
    }
}
