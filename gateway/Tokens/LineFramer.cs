using System.Buffers;

namespace Gateway.Tokens;

/// <summary>
/// Splits bytes into lines as they pass, carrying a partial line between writes in a pooled buffer.
/// A line longer than <see cref="MaxLineBytes"/> is skipped rather than buffered: a hostile or broken
/// upstream cannot make the gateway hold more than that per stream.
/// </summary>
internal sealed class LineFramer : IDisposable
{
    public const int MaxLineBytes = 1024 * 1024;

    private byte[]? _carry;
    private int _carryLength;
    private bool _carryHandedOut;
    private bool _skipping;

    /// <summary>
    /// Takes the next complete line (without its line ending) from <paramref name="input"/>, advancing it.
    /// Returns false once the input is used up; what is left is kept for the next write. The line is
    /// valid until the next call.
    /// </summary>
    public bool TryReadLine(ref ReadOnlySpan<byte> input, out ReadOnlySpan<byte> line)
    {
        if (_carryHandedOut)
        {
            _carryHandedOut = false;
            _carryLength = 0;
        }

        while (true)
        {
            var newline = input.IndexOf((byte)'\n');
            if (newline < 0)
            {
                Append(input);
                input = default;
                line = default;
                return false;
            }

            var piece = input[..newline];
            input = input[(newline + 1)..];
            if (_skipping)
            {
                _skipping = false;
                _carryLength = 0;
                continue;
            }

            if (_carryLength == 0)
            {
                if (piece.Length > MaxLineBytes)
                {
                    SkippedOversizedLine = true; // the same line split over writes is skipped too
                    continue;
                }

                line = TrimCr(piece);
                return true;
            }

            Append(piece);
            if (_skipping)
            {
                _skipping = false;
                _carryLength = 0;
                continue;
            }

            _carryHandedOut = true;
            line = TrimCr(_carry.AsSpan(0, _carryLength));
            return true;
        }
    }

    /// <summary>The unterminated last line, if any (a stream may end without a final newline).</summary>
    public ReadOnlySpan<byte> Pending =>
        _skipping || _carryHandedOut || _carry is null ? default : TrimCr(_carry.AsSpan(0, _carryLength));

    /// <summary>True when a line over <see cref="MaxLineBytes"/> was seen (and skipped).</summary>
    public bool SkippedOversizedLine { get; private set; }

    public void Dispose()
    {
        if (_carry is not null)
        {
            ArrayPool<byte>.Shared.Return(_carry);
            _carry = null;
        }
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        if (_skipping || bytes.IsEmpty)
        {
            return;
        }

        var needed = _carryLength + bytes.Length;
        if (needed > MaxLineBytes)
        {
            _skipping = true;
            SkippedOversizedLine = true;
            _carryLength = 0;
            return;
        }

        if (_carry is null || _carry.Length < needed)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 256));
            if (_carry is not null)
            {
                _carry.AsSpan(0, _carryLength).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_carry);
            }

            _carry = bigger;
        }

        bytes.CopyTo(_carry.AsSpan(_carryLength));
        _carryLength = needed;
    }

    private static ReadOnlySpan<byte> TrimCr(ReadOnlySpan<byte> line) =>
        line.Length > 0 && line[^1] == (byte)'\r' ? line[..^1] : line;
}
