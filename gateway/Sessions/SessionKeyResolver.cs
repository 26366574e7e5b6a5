using Microsoft.Extensions.Options;

namespace Gateway.Sessions;

/// <summary>The outcome of reading a session key from a request.</summary>
internal readonly record struct SessionKeyResult(SessionKey? Key, string? Error)
{
    public static SessionKeyResult None => default;
    public static SessionKeyResult Invalid(string error) => new(null, error);
}

/// <summary>Reads and validates the session id and scopes it by route and credential.</summary>
internal sealed class SessionKeyResolver(IOptions<SessionKeyOptions> options)
{
    private readonly SessionKeyOptions _options = options.Value;

    public SessionKeyResult Resolve(HttpRequest request, string routeId, string? headerOverride)
    {
        var values = request.Headers[headerOverride ?? _options.HeaderName];
        if (values.Count == 0)
        {
            return SessionKeyResult.None;
        }

        if (values.Count > 1)
        {
            return SessionKeyResult.Invalid("The session key header was sent more than once; send exactly one value.");
        }

        var sessionId = values[0];
        if (string.IsNullOrWhiteSpace(sessionId))
        {
            // An empty id means "no session": the request is proxied untracked, as without the header.
            return SessionKeyResult.None;
        }

        if (Validate(sessionId, _options.MaxKeyBytes) is { } error)
        {
            return SessionKeyResult.Invalid(error);
        }

        string? credential = null;
        if (_options.CredentialHeader.Length > 0)
        {
            credential = request.Headers[_options.CredentialHeader].ToString();
        }

        return new SessionKeyResult(SessionKey.Create(routeId, credential, sessionId), null);
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
