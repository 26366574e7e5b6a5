using System.Buffers;
using System.Text;

namespace MockLlm.Generation;

/// <summary>The deterministic completion for one prompt: token i is a word (plus a trailing space)
/// picked by hashing (prompt seed, i), so any token can be produced without replaying the others.</summary>
internal sealed class TokenScript
{
    // Plain lowercase ASCII only: the protocol writers splice these bytes into JSON strings unescaped.
    private static readonly byte[][] s_tokens = BuildTokens(
    [
        "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
        "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et",
        "dolore", "magna", "aliqua", "enim", "ad", "minim", "veniam", "quis",
        "nostrud", "exercitation", "ullamco", "laboris", "nisi", "aliquip", "ex", "ea",
        "commodo", "consequat", "duis", "aute", "irure", "in", "reprehenderit", "voluptate",
        "velit", "esse", "cillum", "fugiat", "nulla", "pariatur", "excepteur", "sint",
        "occaecat", "cupidatat", "non", "proident", "sunt", "culpa", "qui", "officia",
        "deserunt", "mollit", "anim", "id", "est", "laborum", "stream", "token",
    ]);

    private readonly ulong _seed;

    private TokenScript(ulong seed, int promptTokens)
    {
        _seed = seed;
        PromptTokens = promptTokens;
    }

    /// <summary>Rough prompt size (whitespace-separated words, at least 1) for usage fields.</summary>
    public int PromptTokens { get; }

    public static TokenScript ForPrompt(string prompt) =>
        new(Fnv1a64(Encoding.UTF8.GetBytes(prompt)), CountWords(prompt));

    /// <summary>A response id that depends only on the prompt and the pinned clock.</summary>
    public string PinnedId(DateTimeOffset clock) =>
        SplitMix64(_seed ^ (ulong)clock.ToUnixTimeSeconds()).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>UTF-8 bytes of token <paramref name="index"/>, e.g. <c>"lorem "</c>.</summary>
    public ReadOnlySpan<byte> Token(int index) => s_tokens[TokenId(index)];

    /// <summary>Token <paramref name="index"/>'s place in the mock's vocabulary, for APIs that report token ids.</summary>
    public int TokenId(int index)
    {
        var mixed = SplitMix64(_seed + ((ulong)index * 0x9E3779B97F4A7C15UL));
        return (int)(mixed % (ulong)s_tokens.Length);
    }

    /// <summary>Writes the first <paramref name="count"/> tokens as one run of text.</summary>
    public void WriteText(IBufferWriter<byte> output, int count)
    {
        for (var i = 0; i < count; i++)
        {
            output.Write(Token(i));
        }
    }

    private static ulong Fnv1a64(ReadOnlySpan<byte> bytes)
    {
        var hash = 0xCBF29CE484222325UL;
        foreach (var b in bytes)
        {
            hash = (hash ^ b) * 0x100000001B3UL;
        }

        return hash;
    }

    private static ulong SplitMix64(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    private static int CountWords(string text)
    {
        var count = 0;
        var inWord = false;
        foreach (var c in text)
        {
            var isSpace = char.IsWhiteSpace(c);
            if (!isSpace && !inWord)
            {
                count++;
            }

            inWord = !isSpace;
        }

        return Math.Max(count, 1);
    }

    private static byte[][] BuildTokens(string[] words)
    {
        var tokens = new byte[words.Length][];
        for (var i = 0; i < words.Length; i++)
        {
            tokens[i] = Encoding.ASCII.GetBytes(words[i] + " ");
        }

        return tokens;
    }
}
