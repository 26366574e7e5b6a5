using System.Net;

namespace Gateway.Draining;

/// <summary>The upstream response body, read through a <see cref="DrainingStream"/>.</summary>
internal sealed class DrainingContent : HttpContent
{
    private readonly HttpContent _inner;
    private readonly DrainContext _drain;
    private DrainingStream? _stream;

    public DrainingContent(HttpContent inner, DrainContext drain)
    {
        _inner = inner;
        _drain = drain;
        foreach (var header in inner.Headers)
        {
            Headers.TryAddWithoutValidation(header.Key, header.Value);
        }
    }

    protected override async Task<Stream> CreateContentReadStreamAsync(CancellationToken cancellationToken) =>
        _stream = new DrainingStream(await _inner.ReadAsStreamAsync(cancellationToken), _drain, Headers.ContentType?.ToString());

    protected override Task<Stream> CreateContentReadStreamAsync() => CreateContentReadStreamAsync(CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        await (await CreateContentReadStreamAsync()).CopyToAsync(stream);

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }

    protected override void Dispose(bool disposing)
    {
        // The body stream decides: at its end it disposes the upstream body; before its end it hands
        // it to a drain, and disposing the content here would close (or silently drain) the
        // connection under that drain.
        if (disposing)
        {
            if (_stream is null)
            {
                _inner.Dispose();
            }
            else
            {
                _stream.Dispose();
            }
        }

        base.Dispose(disposing);
    }
}
