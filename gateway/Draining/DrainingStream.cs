using System.Buffers;
using Gateway.Tokens;
using Gateway.Utilities;

namespace Gateway.Draining;

/// <summary>
/// Reads the upstream body for YARP into a buffer of its own, on the drain's token rather than
/// YARP's. When YARP stops reading (its token fired) and disposes the stream, the read in flight and
/// the rest of the body are taken over by a background drain that counts what it reads.
/// </summary>
internal sealed class DrainingStream(Stream inner, DrainContext drain, string? contentType) : ReadOnlyStream
{
    private readonly byte[] _buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
    private Task<int>? _pending;
    private bool _pendingIsZeroByte;
    private bool _ended;
    private int _disposed;

    /// <summary>True once a background drain owns the upstream body.</summary>
    public bool Draining { get; private set; }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // Our own buffer: YARP may return its buffer to the pool once its read is cancelled, while
        // the upstream read carries on.
        if (_pending is null)
        {
            // YARP first reads zero bytes to wait for data without holding a buffer: a 0 from such a
            // read means "data is ready", not the end of the body.
            _pendingIsZeroByte = buffer.Length == 0;
            _pending = inner.ReadAsync(_buffer.AsMemory(0, Math.Min(_buffer.Length, buffer.Length)), drain.Stopping).AsTask();
        }

        var read = await _pending.WaitAsync(cancellationToken);
        _pending = null;
        _ended = read == 0 && !_pendingIsZeroByte;
        _buffer.AsSpan(0, read).CopyTo(buffer.Span);
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override ValueTask DisposeAsync()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
        return default;
    }

    protected override void Dispose(bool disposing)
    {
        if (!disposing || Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        if (_ended)
        {
            inner.Dispose();
            ArrayPool<byte>.Shared.Return(_buffer);
            return;
        }

        // YARP gave the body up before its end: read the rest in the background.
        Draining = true;
        drain.Begin();
        _ = DrainRestAsync(_pending, _pendingIsZeroByte);
    }

    private async Task DrainRestAsync(Task<int>? pending, bool pendingIsZeroByte)
    {
        var counter = drain.CounterFor(contentType);
        try
        {
            if (pending is not null)
            {
                var read = await pending;
                counter.Observe(_buffer.AsSpan(0, read));
                if (read == 0 && !pendingIsZeroByte)
                {
                    return;
                }
            }

            await ReadToEndAsync(inner, counter, drain.Stopping, _buffer);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or HttpRequestException or ObjectDisposedException)
        {
            // The upstream failed or the gateway is stopping: what was counted is all there is.
        }
        finally
        {
            await inner.DisposeAsync();
            ArrayPool<byte>.Shared.Return(_buffer);
            drain.DrainEnded();
        }
    }

    public static async Task ReadToEndAsync(Stream body, TokenCounter counter, CancellationToken cancellationToken, byte[]? buffer = null)
    {
        var rented = buffer is null ? ArrayPool<byte>.Shared.Rent(16 * 1024) : null;
        var bytes = buffer ?? rented!;
        try
        {
            int read;
            while ((read = await body.ReadAsync(bytes, cancellationToken)) > 0)
            {
                counter.Observe(bytes.AsSpan(0, read));
            }
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }
}
