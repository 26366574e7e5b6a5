using System.Buffers;

namespace Gateway.Failover;

/// <summary>
/// The request body as the forwarder reads it, with what was read kept (up to a bound) so that another attempt
/// can send the same bytes: <see cref="Rewind"/> starts the next read from the first byte again, served from the
/// copy, then from the client's body where the copy ends. Past the bound nothing more is kept and the body can no
/// longer be rewound (unless nothing was read). The copy is given back once the response headers arrived
/// (<see cref="Release"/>): no attempt is made after that.
/// </summary>
internal sealed class ReplayableBody(Stream inner, int maxBytes) : Stream
{
    private byte[]? _kept;
    private int _keptLength; // bytes read from the client so far, all of them in _kept unless _overflowed
    private int _position; // where the next read starts, in the body
    private bool _overflowed;
    private bool _released;

    /// <summary>Bytes read from the client's body so far (by every attempt together).</summary>
    public long BytesRead => _keptLength;

    /// <summary>Whether an attempt can send the body again from its first byte.</summary>
    public bool CanRewind => _keptLength == 0 || (!_overflowed && !_released);

    /// <summary>Starts the body again from its first byte; false when it cannot (see <see cref="CanRewind"/>).</summary>
    public bool Rewind()
    {
        if (!CanRewind)
        {
            return false;
        }

        _position = 0;
        return true;
    }

    /// <summary>Gives the copy back: the response has started, so no other attempt will be made.</summary>
    public void Release()
    {
        _released = true;
        if (_kept is { } kept && _position >= _keptLength)
        {
            _kept = null;
            ArrayPool<byte>.Shared.Return(kept);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position < _keptLength && _kept is not null)
        {
            var count = Math.Min(buffer.Length, _keptLength - _position);
            _kept.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            ReturnIfDone();
            return count;
        }

        var read = await inner.ReadAsync(buffer, cancellationToken);
        Keep(buffer.Span[..read]);
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private void Keep(ReadOnlySpan<byte> read)
    {
        if (read.IsEmpty)
        {
            return;
        }

        if (!_overflowed && !_released)
        {
            if (_keptLength + read.Length > maxBytes)
            {
                _overflowed = true;
                if (_kept is { } kept)
                {
                    _kept = null;
                    ArrayPool<byte>.Shared.Return(kept);
                }
            }
            else
            {
                Grow(_keptLength + read.Length);
                read.CopyTo(_kept.AsSpan(_keptLength));
            }
        }

        _keptLength += read.Length;
        _position = _keptLength;
    }

    private void Grow(int needed)
    {
        if (_kept is not null && _kept.Length >= needed)
        {
            return;
        }

        var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Min(maxBytes, Math.Max(4096, (_kept?.Length ?? 0) * 2))));
        if (_kept is { } old)
        {
            old.AsSpan(0, _keptLength).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(old);
        }

        _kept = bigger;
    }

    private void ReturnIfDone()
    {
        if (_released && _position >= _keptLength && _kept is { } kept)
        {
            _kept = null;
            ArrayPool<byte>.Shared.Return(kept);
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && _kept is { } kept)
        {
            _kept = null;
            ArrayPool<byte>.Shared.Return(kept);
        }

        base.Dispose(disposing);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
