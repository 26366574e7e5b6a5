using System.Security.Cryptography;
using System.Text;

namespace Gateway.Utilities;

/// <summary>SHA-256 shown as lowercase hex: what logs, Redis keys and ETags carry instead of the value.</summary>
internal static class Hashes
{
    /// <summary>Hex of the first <paramref name="bytes"/> bytes (at most 32) of SHA-256 over <paramref name="text"/> in UTF-8.</summary>
    public static string Sha256Hex(string text, int bytes) => Sha256Hex(Encoding.UTF8.GetBytes(text), bytes);

    /// <summary>Hex of the first <paramref name="bytes"/> bytes (at most 32) of SHA-256 over <paramref name="data"/>.</summary>
    public static string Sha256Hex(ReadOnlySpan<byte> data, int bytes)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(data, hash);
        return Convert.ToHexStringLower(hash[..bytes]);
    }
}
