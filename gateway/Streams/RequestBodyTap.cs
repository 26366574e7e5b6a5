using Gateway.Protocols;
using Gateway.Utilities;

namespace Gateway.Streams;

/// <summary>
/// Stands in for the request body while the forwarder reads it: every byte goes on unchanged, and
/// passes a <see cref="BodyScanner"/> on the way, so the request's facts come from the whole body
/// without holding it. Its stream is told once the body has been read to its end (<see cref="SessionStream.BodySent"/>).
/// </summary>
internal sealed class RequestBodyTap(Stream inner, BodyScanner scanner, SessionStream stream) : ReadOnlyStream
{
    private int _ended;

    public BodyScanner Scanner => scanner;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken);
        Saw(buffer.Span[..read], buffer.Length);
        return read;
    }

    public override int Read(Span<byte> buffer)
    {
        var read = inner.Read(buffer);
        Saw(buffer[..read], buffer.Length);
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>Marks the body ended for a request whose body was not read (the forwarder failed first).</summary>
    public void End()
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0)
        {
            stream.BodySent();
        }
    }

    private void Saw(ReadOnlySpan<byte> bytes, int asked)
    {
        if (!bytes.IsEmpty)
        {
            scanner.Feed(bytes);
        }
        else if (asked > 0)
        {
            End(); // a zero-byte read only waits for data; a 0 from a real read is the end
        }
    }
}
