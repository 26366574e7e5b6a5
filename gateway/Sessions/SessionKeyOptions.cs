using System.ComponentModel.DataAnnotations;

namespace Gateway.Sessions;

/// <summary>How session keys are read. Bound from <c>Gateway:Sessions</c>.</summary>
internal sealed class SessionKeyOptions
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

    /// <summary>The header whose value identifies the tenant (hashed, never stored): <c>Authorization</c>
    /// by default, an API-key header such as <c>api-key</c>, or empty to scope by route only. With an
    /// empty value every caller shares one scope, so anyone who knows a session id can supersede it.</summary>
    [RegularExpression("^[!#$%&'*+.^_`|~0-9A-Za-z-]*$", ErrorMessage = "Gateway:Sessions:CredentialHeader must be an HTTP header name or empty.")]
    public string CredentialHeader { get; set; } = "Authorization";
}
