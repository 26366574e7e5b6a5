using System.Buffers;
using System.Text.Json;

namespace Gateway.Tokens;

/// <summary>
/// The completion text of one stream, kept only when a route counts with a tokenizer. Bounded: past
/// <see cref="MaxBytes"/> the rest is not kept and the count is marked partial.
/// </summary>
internal sealed class ContentText : IDisposable
{
    public const int MaxBytes = 4 * 1024 * 1024;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(4096);
    private int _length;

    public bool Truncated { get; private set; }

    public ReadOnlySpan<byte> Utf8 => _buffer.AsSpan(0, _length);

    public int Length => _length;

    /// <summary>Drops what was appended after <paramref name="length"/> (a chunk that turned out malformed).</summary>
    public void Truncate(int length) => _length = Math.Clamp(length, 0, _length);

    /// <summary>Appends the unescaped value of the string token the reader is on.</summary>
    public void Append(ref Utf8JsonReader reader)
    {
        var maxLength = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
        if (_length + maxLength > MaxBytes)
        {
            Truncated = true;
            return;
        }

        Ensure(_length + (int)maxLength);
        _length += reader.CopyString(_buffer.AsSpan(_length));
    }

    /// <summary>Appends raw bytes (plain-text streams).</summary>
    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (_length + bytes.Length > MaxBytes)
        {
            Truncated = true;
            return;
        }

        Ensure(_length + bytes.Length);
        bytes.CopyTo(_buffer.AsSpan(_length));
        _length += bytes.Length;
    }

    public void Dispose()
    {
        var buffer = _buffer;
        _buffer = [];
        if (buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Ensure(int size)
    {
        if (_buffer.Length >= size)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(size, _buffer.Length * 2));
        _buffer.AsSpan(0, _length).CopyTo(bigger);
        ArrayPool<byte>.Shared.Return(_buffer);
        _buffer = bigger;
    }
}
