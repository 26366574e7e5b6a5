using Gateway.Protocols;
using System.ComponentModel.DataAnnotations;
using System.Text;
using Gateway.Savings;
using Gateway.Tokens;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.Tokenizers;

namespace Gateway.Tests.Tokens;

public sealed class TokenizerCountingTests
{
    /// <summary>Text whose token count differs between o200k_base and cl100k_base (asserted below).</summary>
    private const string Multilingual = "नमस्ते दुनिया, こんにちは世界, Привет мир";

    private static TokenizerCounting NewCounting(Dictionary<string, string>? modelEncodings = null) =>
        new(Options.Create(new TokenOptions
        {
            Counting = TokenCounting.Tokenizer,
            ModelEncodings = modelEncodings ?? new(StringComparer.Ordinal),
        }), NullLogger<TokenizerCounting>.Instance);

    [Fact]
    public void TokenizerMode_ChatStream_KeepsUnescapedConcatenatedText()
    {
        using var counter = ApiAdapters.Other.CreateCounter("text/event-stream", new ContentText());

        counter.Observe("data: {\"choices\":[{\"delta\":{\"content\":\"line one\\nline \\\"two\\\"\"}}]}\n\n"u8);
        counter.Observe("data: {\"choices\":[{\"delta\":{\"content\":\" caf\\u00e9 \\ud83d\\ude00\"}}]}\n\n"u8);
        counter.Observe("data: {\"choices\":[{\"delta\":{\"content\":\" \\t\\/\\\\\"}}]}\n\ndata: [DONE]\n\n"u8);
        counter.Complete();

        Assert.Equal("line one\nline \"two\" café 😀 \t/\\", Encoding.UTF8.GetString(counter.Text!.Utf8));
    }

    [Fact]
    public void ChunksMode_NoContentText_KeepsNoText()
    {
        using var counter = ApiAdapters.Other.CreateCounter("text/event-stream", null);

        counter.Observe("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"u8);

        Assert.Null(counter.Text);
        Assert.Equal(1, counter.ContentChunks);
    }

    [Fact]
    public void TextOverLimit_Append_StopsKeepingAndMarksTruncated()
    {
        using var text = new ContentText();
        var big = new byte[ContentText.MaxBytes - 1];

        text.Append(big);
        text.Append("ab"u8);

        Assert.True(text.Truncated);
        Assert.Equal(ContentText.MaxBytes - 1, text.Utf8.Length);
    }

    [Fact]
    public void CountingMode_Enabled_IsTrueOnlyForTokenizer()
    {
        var counting = NewCounting();
        var chunks = new TokenizerCounting(Options.Create(new TokenOptions()), NullLogger<TokenizerCounting>.Instance);

        Assert.True(counting.Enabled);
        Assert.False(chunks.Enabled);
    }

    [Fact]
    public void Gpt4o_Count_UsesO200kBase()
    {
        var counting = NewCounting();

        Assert.Equal(2, counting.Count("gpt-4o", "hello world"u8));
        Assert.Equal(
            TiktokenTokenizer.CreateForEncoding("o200k_base").CountTokens(Multilingual),
            counting.Count("gpt-4o", Encoding.UTF8.GetBytes(Multilingual)));
    }

    [Fact]
    public void PrefixMapping_Count_SelectsCl100kBaseForMatchingModelsOnly()
    {
        var o200k = TiktokenTokenizer.CreateForEncoding("o200k_base").CountTokens(Multilingual);
        var cl100k = TiktokenTokenizer.CreateForEncoding("cl100k_base").CountTokens(Multilingual);
        Assert.NotEqual(o200k, cl100k); // otherwise this test could not tell the encodings apart
        var counting = NewCounting(new(StringComparer.Ordinal) { ["gpt-3.5*"] = "cl100k_base", ["text-embedding-3-small"] = "cl100k_base" });
        var utf8 = Encoding.UTF8.GetBytes(Multilingual);

        Assert.Equal(cl100k, counting.Count("gpt-3.5-turbo-0125", utf8));
        Assert.Equal(cl100k, counting.Count("gpt-3.5", utf8));
        Assert.Equal(cl100k, counting.Count("text-embedding-3-small", utf8));
        Assert.Equal(o200k, counting.Count("text-embedding-3-small-v2", utf8)); // exact name, not a prefix
        Assert.Equal(o200k, counting.Count("gpt-4o-mini", utf8));
        Assert.Equal(o200k, counting.Count("xgpt-3.5", utf8));
    }

    [Fact]
    public void InvalidUtf8_Count_DoesNotThrow()
    {
        var counting = NewCounting();

        Assert.True(counting.Count("gpt-4o", [(byte)'h', 0xFF, 0xFE, (byte)'i']) > 0);
    }

    [Fact]
    public void UnknownModelEncoding_Validate_FailsNamingTheKey()
    {
        var options = new TokenOptions { ModelEncodings = new(StringComparer.Ordinal) { ["llama*"] = "p50k_base" } };
        var results = new List<ValidationResult>();

        var valid = Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);

        Assert.False(valid);
        var message = Assert.Single(results).ErrorMessage;
        Assert.Contains("Gateway:Tokens:ModelEncodings:llama*", message, StringComparison.Ordinal);
        Assert.Contains("p50k_base", message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnknownDefaultEncoding_Validate_FailsNamingTheKey()
    {
        var options = new TokenOptions { DefaultEncoding = "r50k_base" };
        var results = new List<ValidationResult>();

        var valid = Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true);

        Assert.False(valid);
        Assert.Contains("Gateway:Tokens:DefaultEncoding", Assert.Single(results).ErrorMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void KnownEncodings_Validate_Passes()
    {
        var options = new TokenOptions
        {
            DefaultEncoding = "cl100k_base",
            ModelEncodings = new(StringComparer.Ordinal) { ["gpt-4o*"] = "o200k_base", ["gpt-3.5*"] = "cl100k_base" },
        };
        var results = new List<ValidationResult>();

        Assert.True(Validator.TryValidateObject(options, new ValidationContext(options), results, validateAllProperties: true));
        Assert.Empty(results);
    }
}
