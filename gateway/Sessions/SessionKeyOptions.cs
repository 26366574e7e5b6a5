using System.ComponentModel.DataAnnotations;

namespace Gateway.Sessions;

/// <summary>How session keys are read. Bound from <c>Gateway:Sessions</c>.</summary>
internal sealed class SessionKeyOptions : IValidatableObject
{
    public const string SectionName = "Gateway:Sessions";

    /// <summary>The request header that carries the session id. A route can override it with the
    /// <c>SessionStreams.Header</c> metadata key.</summary>
    [Required]
    [RegularExpression("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", ErrorMessage = "Gateway:Sessions:HeaderName must be an HTTP header name.")]
    public string HeaderName { get; set; } = "X-Session-Id";

    /// <summary>Longest accepted session id in bytes (ids are printable ASCII); longer ids get a 400.</summary>
    [Range(1, 4096, ErrorMessage = "Gateway:Sessions:MaxKeyBytes must be between 1 and 4096.")]
    public int MaxKeyBytes { get; set; } = 256;

    /// <summary>Most bytes of a request body buffered to find a <c>body:</c> session key (the claim must be
    /// made before the request goes upstream). A key that lies past them is not found: the request
    /// counts as having no body key (the next source is tried). Only routes with body sources buffer.</summary>
    [Range(1024, 64 * 1024 * 1024, ErrorMessage = "Gateway:Sessions:MaxBodyKeyBytes must be between 1024 and 67108864.")]
    public int MaxBodyKeyBytes { get; set; } = BodyKeyPeek.DefaultMaxBytes;

    /// <summary>The header whose value identifies the tenant (hashed, never stored): <c>Authorization</c>
    /// by default, an API-key header such as <c>api-key</c>, or empty to scope by route only. With an
    /// empty value every caller shares one scope, so anyone who knows a session id can supersede it.</summary>
    [RegularExpression("^[!#$%&'*+.^_`|~0-9A-Za-z-]*$", ErrorMessage = "Gateway:Sessions:CredentialHeader must be an HTTP header name or empty.")]
    public string CredentialHeader { get; set; } = "Authorization";

    /// <summary>Where session ids come from, tried in order (<c>kind:name</c>, see <see cref="KeySource"/>).
    /// Empty: the <see cref="HeaderName"/> header, then the <c>session_id</c> query parameter (what a
    /// browser EventSource can send). A route can set its own with <c>SessionStreams.Sources</c>.</summary>
    public string[] Sources { get; set; } = [];

    /// <summary>Path of the explicit stop: <c>POST</c> here ends the caller's active stream for the session.</summary>
    [RegularExpression("^/[A-Za-z0-9/_.-]*\\{sessionId\\}[A-Za-z0-9/_.-]*$", ErrorMessage = "Gateway:Sessions:CancelPath must be a path containing {{sessionId}}.")]
    public string CancelPath { get; set; } = "/v1/sessions/{sessionId}/cancel";

    /// <summary>The sources in force where a route sets none.</summary>
    public KeySource[] EffectiveSources() =>
        Sources.Length == 0
            ? [new KeySource(KeySourceKind.Header, HeaderName), new KeySource(KeySourceKind.Query, "session_id")]
            : KeySource.TryParseList(Sources, out var sources) is null ? sources : [];

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Sources.Length > 0 && KeySource.TryParseList(Sources, out _) is { } error)
        {
            yield return new ValidationResult($"Gateway:Sessions:Sources: {error}");
        }
    }
}
