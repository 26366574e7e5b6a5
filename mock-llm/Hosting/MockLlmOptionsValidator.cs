using Microsoft.Extensions.Options;
using MockLlm.Generation;

namespace MockLlm.Hosting;

/// <summary>Stops the process at start with a message naming the bad key.</summary>
internal sealed class MockLlmOptionsValidator : IValidateOptions<MockLlmOptions>
{
    public ValidateOptionsResult Validate(string? name, MockLlmOptions options)
    {
        List<string>? failures = null;
        const string Section = MockLlmOptions.SectionName;

        // Written as !(in range) so NaN fails too.
        if (!(options.TokensPerSecond > 0 && options.TokensPerSecond <= MockLlmOptions.MaxTokensPerSecond))
        {
            (failures ??= []).Add($"{Section}:{nameof(options.TokensPerSecond)} must be > 0 and <= {MockLlmOptions.MaxTokensPerSecond}; got {options.TokensPerSecond}.");
        }

        if (options.TimeToFirstTokenMs < 0)
        {
            (failures ??= []).Add($"{Section}:{nameof(options.TimeToFirstTokenMs)} must be >= 0; got {options.TimeToFirstTokenMs}.");
        }

        if (options.DefaultCompletionTokens < 1)
        {
            (failures ??= []).Add($"{Section}:{nameof(options.DefaultCompletionTokens)} must be >= 1; got {options.DefaultCompletionTokens}.");
        }

        if (options.Models is null || options.Models.Length == 0 || Array.Exists(options.Models, string.IsNullOrWhiteSpace))
        {
            (failures ??= []).Add($"{Section}:{nameof(options.Models)} must list at least one non-empty model id.");
        }

        return failures is null ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
