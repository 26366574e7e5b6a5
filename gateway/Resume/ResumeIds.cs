using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;

namespace Gateway.Resume;

/// <summary>
/// The SSE event ids of a resumable stream: <c>{stream}.{n}</c>, where the stream part is 128 random bits in
/// base64url (22 characters: no one can guess another stream's ids) and <c>n</c> counts the stream's events from 1.
/// At most 33 printable ASCII characters, no <c>:</c> and no whitespace.
/// </summary>
internal static class ResumeIds
{
    /// <summary>The longest <c>Last-Event-ID</c> the gateway reads; a longer one is refused as malformed.</summary>
    public const int MaxLength = 64;

    private const int StreamIdLength = 22;

    public static string NewStreamId()
    {
        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        return Base64Url.EncodeToString(random);
    }

    public static string Of(string streamId, long sequence) => string.Create(CultureInfo.InvariantCulture, $"{streamId}.{sequence}");

    /// <summary>True when <paramref name="value"/> may be looked up: at most <see cref="MaxLength"/> characters, all
    /// printable ASCII. Anything else is a malformed request (400), like a malformed session key.</summary>
    public static bool IsWellFormed(string value)
    {
        if (value.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c is < ' ' or > '~')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Reads an id of the gateway's own form; false for any other (which no stream has, so it cannot be resumed).</summary>
    public static bool TryParse(string value, out string streamId, out long sequence)
    {
        streamId = "";
        sequence = 0;
        if (value.Length <= StreamIdLength + 1 || value[StreamIdLength] != '.')
        {
            return false;
        }

        var digits = value.AsSpan(StreamIdLength + 1);
        if (digits[0] is < '1' or > '9'
            || !long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out sequence))
        {
            return false;
        }

        streamId = value[..StreamIdLength];
        return true;
    }
}
