namespace Gateway.Sessions;

internal enum KeySourceKind
{
    Header,
    Query,
    Cookie,
    Body,
}

/// <summary>
/// Where a session id may come from, written <c>kind:name</c>: <c>header:X-Session-Id</c>,
/// <c>query:session_id</c> (what a browser <c>EventSource</c> can send), <c>cookie:sid</c>, or
/// <c>body:metadata.session_id</c> (a JSON field path in the request body, read from the bounded peek).
/// </summary>
internal sealed record KeySource(KeySourceKind Kind, string Name)
{
    /// <summary>For a body source, the field path split at dots.</summary>
    public string[] Path { get; } = Kind == KeySourceKind.Body ? Name.Split('.') : [];

    public override string ToString() => $"{Kind.ToString().ToLowerInvariant()}:{Name}";

    /// <summary>Parses a comma-separated list; returns what is wrong with it, or null.</summary>
    public static string? TryParseList(IEnumerable<string> specs, out KeySource[] sources)
    {
        var parsed = new List<KeySource>();
        sources = [];
        foreach (var raw in specs)
        {
            var spec = raw.Trim();
            var colon = spec.IndexOf(':');
            if (colon <= 0 || colon == spec.Length - 1)
            {
                return $"'{spec}' is not a key source; write kind:name, e.g. header:X-Session-Id, query:session_id, cookie:sid, body:metadata.session_id.";
            }

            var name = spec[(colon + 1)..].Trim();
            KeySourceKind kind;
            switch (spec[..colon].Trim().ToLowerInvariant())
            {
                case "header":
                    kind = KeySourceKind.Header;
                    if (!IsToken(name))
                    {
                        return $"'{name}' in '{spec}' is not an HTTP header name.";
                    }

                    break;
                case "query":
                    kind = KeySourceKind.Query;
                    break;
                case "cookie":
                    kind = KeySourceKind.Cookie;
                    if (!IsToken(name))
                    {
                        return $"'{name}' in '{spec}' is not a cookie name.";
                    }

                    break;
                case "body":
                    kind = KeySourceKind.Body;
                    if (name.Split('.').Any(string.IsNullOrWhiteSpace) || name.Split('.').Length > 8)
                    {
                        return $"'{name}' in '{spec}' is not a JSON field path (fields separated by dots, at most 8).";
                    }

                    break;
                default:
                    return $"'{spec}' has an unknown kind; use header, query, cookie or body.";
            }

            parsed.Add(new KeySource(kind, name));
        }

        if (parsed.Count == 0)
        {
            return "the list of key sources is empty.";
        }

        sources = [.. parsed];
        return null;
    }

    public static bool IsToken(string value)
    {
        if (value.Length == 0)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c)))
            {
                return false;
            }
        }

        return true;
    }
}
