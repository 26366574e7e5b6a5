using System.ComponentModel.DataAnnotations;

namespace Gateway.Tokens;

/// <summary>How completion tokens are counted. Bound from <c>Gateway:Tokens</c>.</summary>
internal sealed class TokenOptions : IValidatableObject
{
    public const string SectionName = "Gateway:Tokens";

    /// <summary><c>Chunks</c> (default): the upstream's usage when the stream carries it, else one token
    /// per content chunk. <c>Tokenizer</c>: for backends that put several tokens in a chunk, the text is
    /// counted with a tiktoken encoding after the stream, on a background worker.</summary>
    public TokenCounting Counting { get; set; } = TokenCounting.Chunks;

    /// <summary>Encoding for models not in <see cref="ModelEncodings"/>: <c>o200k_base</c> or <c>cl100k_base</c>.</summary>
    [RegularExpression("^(o200k_base|cl100k_base)$", ErrorMessage = "Gateway:Tokens:DefaultEncoding must be o200k_base or cl100k_base.")]
    public string DefaultEncoding { get; set; } = "o200k_base";

    /// <summary>Model name (or a prefix ending in <c>*</c>) to encoding, e.g. <c>"gpt-3.5*": "cl100k_base"</c>.
    /// First match wins, in configuration order; mind prefixes that also match newer models
    /// (<c>gpt-4*</c> would catch gpt-4o, which uses o200k_base).</summary>
    public Dictionary<string, string> ModelEncodings { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Streams waiting for the tokenizer at most; past it a stream is counted by chunks instead, so memory stays bounded.</summary>
    [Range(1, 100_000, ErrorMessage = "Gateway:Tokens:QueueCapacity must be between 1 and 100000.")]
    public int QueueCapacity { get; set; } = 1024;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        foreach (var (model, encoding) in ModelEncodings)
        {
            if (encoding is not ("o200k_base" or "cl100k_base"))
            {
                yield return new ValidationResult(
                    $"Gateway:Tokens:ModelEncodings:{model} must be o200k_base or cl100k_base, not '{encoding}'.");
            }
        }
    }
}

internal enum TokenCounting
{
    Chunks,
    Tokenizer,
}
