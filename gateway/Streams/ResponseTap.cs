using System.IO.Pipelines;
using Gateway.Tokens;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Streams;

/// <summary>
/// Passes the response body through unchanged, counting its tokens on the way, and remembers its last
/// bytes, so that an error event added after an early end starts on an event (SSE) or line (NDJSON)
/// boundary.
/// </summary>
internal sealed class ResponseTap : Stream, IHttpResponseBodyFeature
{
    private readonly IHttpResponseBodyFeature _inner;
    private readonly Stream _innerStream;
    private readonly HttpResponse? _response;
    private readonly TimeProvider _time;
    private readonly bool _keepText;
    private readonly bool _countTokens;
    private PipeWriter? _writer;
    private uint _tail; // the last four bytes written, newest in the low byte

    /// <param name="countTokens">False for responses nobody accounts for (no session, no model): then
    /// no counter is made, and a large JSON body is not buffered for a count nobody reads.</param>
    public ResponseTap(IHttpResponseBodyFeature inner, HttpResponse? response = null, TimeProvider? time = null, bool keepText = false,
        bool countTokens = true)
    {
        _countTokens = countTokens;
        _inner = inner;
        _innerStream = inner.Stream;
        _response = response;
        _time = time ?? TimeProvider.System;
        _keepText = keepText;
    }

    public long BytesWritten { get; private set; }

    /// <summary><see cref="TimeProvider.GetTimestamp"/> of the first body bytes; 0 before them.</summary>
    public long FirstWriteAt { get; private set; }

    /// <summary>The token counter, chosen by the response's Content-Type at its first bytes; null before them.</summary>
    public TokenCounter? Counter { get; private set; }

    /// <summary>True when nothing was written or the bytes so far end with a blank line.</summary>
    public bool AtSseEventBoundary =>
        BytesWritten == 0
        || (_tail & 0xFFFF) == 0x0A0A       // \n\n
        || (_tail & 0xFFFF) == 0x0D0D       // \r\r
        || _tail == 0x0D0A0D0A;             // \r\n\r\n

    /// <summary>True when nothing was written or the bytes so far end with a newline.</summary>
    public bool AtLineBoundary => BytesWritten == 0 || (_tail & 0xFF) == 0x0A;

    Stream IHttpResponseBodyFeature.Stream => this;

    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= PipeWriter.Create(this, new StreamPipeWriterOptions(leaveOpen: true));

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => _inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        SendFileFallback.SendFileAsync(this, path, offset, count, cancellationToken);

    public async Task CompleteAsync()
    {
        if (_writer is not null)
        {
            await _writer.FlushAsync();
        }

        await _inner.CompleteAsync();
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        _innerStream.Write(buffer);
        Observe(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // Observed before the write completes: the bytes are committed to the client pipe either way.
        Observe(buffer.Span);
        return _innerStream.WriteAsync(buffer, cancellationToken);
    }

    /// <summary>Writes the gateway's own bytes (an end notice): framed like the rest, never counted
    /// as tokens, and never racing a drain that is still counting the upstream's bytes.</summary>
    public async ValueTask WriteOwnAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _innerStream.WriteAsync(bytes, cancellationToken);
        var span = bytes.Span;
        BytesWritten += span.Length;
        for (var i = Math.Max(0, span.Length - 4); i < span.Length; i++)
        {
            _tail = (_tail << 8) | span[i];
        }
    }

    public override void Flush() => _innerStream.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _innerStream.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    private void Observe(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        if (BytesWritten == 0)
        {
            FirstWriteAt = _time.GetTimestamp();
            Counter = _countTokens ? TokenCounter.For(_response?.ContentType, _keepText ? new ContentText() : null) : null;
        }

        Counter?.Observe(bytes);
        BytesWritten += bytes.Length;
        var start = Math.Max(0, bytes.Length - 4);
        for (var i = start; i < bytes.Length; i++)
        {
            _tail = (_tail << 8) | bytes[i];
        }
    }
}
