using Gateway.Protocols;
using Gateway.Utilities;

namespace Gateway.Streams;

/// <summary>
/// Stands in for the request body while the forwarder reads it: every byte goes on unchanged, and
/// passes a <see cref="BodyScanner"/> on the way, so the request's facts come from the whole body
/// without holding it. <see cref="Ended"/> runs once the body has been read to its end.
/// </summary>
internal sealed class RequestBodyTap(Stream inner, BodyScanner scanner, Action ended) : ReadOnlyStream
{
    private int _ended;

    /// <summary>True for a POST with a JSON body (Content-Type <c>application/json</c>, any parameters).</summary>
    public static bool IsJsonBody(HttpRequest request) =>
        HttpMethods.IsPost(request.Method) && request.ContentLength != 0
        && request.ContentType is { } type && type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);

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
            ended();
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
