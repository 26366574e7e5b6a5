using System.ComponentModel.DataAnnotations;

namespace Gateway.Admin;

/// <summary>The admin surface. Bound from <c>Gateway:Admin</c>.</summary>
internal sealed class AdminOptions : IValidatableObject
{
    public const string SectionName = "Gateway:Admin";

    /// <summary>Bearer token for <c>/admin/*</c>. Empty (default): the admin endpoints are not mapped at all.</summary>
    public string Token { get; set; } = "";

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (Token.Length is > 0 and < 16)
        {
            yield return new ValidationResult("Gateway:Admin:Token must be at least 16 characters when set.");
        }
    }
}
