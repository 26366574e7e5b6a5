using System.Buffers;
using System.IO.Pipelines;
using Gateway.Protocols;
using Gateway.Resume;
using Gateway.Tokens;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Streams;

/// <summary>
/// Passes the response body to the client a whole event at a time, counting its tokens on the way.
/// For SSE and NDJSON, the bytes after the last complete event (or line) of a write are held until
/// the event completes, so that a stream ended early never shows its client half an event before
/// the gateway's own terminal event. Upstreams write whole events almost always: then nothing is
/// copied or held.
/// </summary>
internal sealed class ResponseTap : Stream, IHttpResponseBodyFeature, ICountedStream
{
    /// <summary>An event longer than this is passed on as it comes rather than held whole.</summary>
    public const int MaxHeldBytes = LineFramer.MaxLineBytes;

    private readonly IHttpResponseBodyFeature _inner;
    private readonly Stream _innerStream;
    private readonly HttpResponse? _response;
    private readonly TimeProvider _time;
    private readonly ApiAdapter _adapter;
    private readonly bool _keepText;
    private readonly bool _countTokens;
    private PipeWriter? _writer;
    private Framing _framing;
    private bool _holding;
    private byte[]? _held;
    private int _heldLength;
    private uint _tail; // the last four bytes the client was sent, newest in the low byte
    private long _sent;
    private int _usageEventsSeen;
    private bool _dropPending; // a usage-only event was counted and has not been taken out yet

    /// <param name="countTokens">False for responses nobody accounts for: then no counter is made.</param>
    public ResponseTap(IHttpResponseBodyFeature inner, HttpResponse? response = null, TimeProvider? time = null, bool keepText = false,
        bool countTokens = true, ApiAdapter? adapter = null)
    {
        _countTokens = countTokens;
        _inner = inner;
        _innerStream = inner.Stream;
        _response = response;
        _time = time ?? TimeProvider.System;
        _keepText = keepText;
        _adapter = adapter ?? ApiAdapters.Other;
    }

    /// <summary>Takes the usage-only event (<see cref="ApiAdapter.IsUsageOnlyEvent"/>) out of what the client is
    /// sent, after counting it: the gateway asked for it (<see cref="ApiAdapter.AskForUsage"/>), the client did not.
    /// Costs nothing per event: the counter already reads every event, and only a write in which it saw
    /// that event is searched for it. Decided by the request body (<see cref="IUsageRequest.AskedUsage"/>),
    /// which knows only once its object has closed, before the upstream answers.</summary>
    public IUsageRequest? UsageRequest { get; set; }

    private bool DropUsageChunk => UsageRequest?.AskedUsage == true;

    /// <summary>On a resumable route: whole events go to the client through the stream's log, which gives them their
    /// ids and keeps them, and sends them only while the client is there.</summary>
    public ResumeLog? Resume { get; set; }

    /// <summary>Bytes the upstream sent (held ones included).</summary>
    public long BytesWritten { get; private set; }

    /// <summary>Bytes held back: the start of an event that has not completed.</summary>
    public int HeldBytes => _heldLength;

    /// <summary><see cref="TimeProvider.GetTimestamp"/> of the first body bytes; 0 before them.</summary>
    public long FirstWriteAt { get; private set; }

    /// <summary>The token counter, chosen by the adapter and the response's Content-Type at its first bytes.</summary>
    public TokenCounter? Counter { get; private set; }

    /// <summary>The response's framing, known from its first bytes.</summary>
    public Framing Framing => _framing;

    /// <summary>True when the client was sent nothing or its bytes end with a blank line.</summary>
    public bool AtSseEventBoundary =>
        _sent == 0
        || (_tail & 0xFFFF) == 0x0A0A       // \n\n
        || (_tail & 0xFFFF) == 0x0D0D       // \r\r
        || _tail == 0x0D0A0D0A;             // \r\n\r\n

    /// <summary>True when the client was sent nothing or its bytes end with a newline.</summary>
    public bool AtLineBoundary => _sent == 0 || (_tail & 0xFF) == 0x0A;

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

    /// <summary>Kestrel refuses synchronous writes unless allowed; where they are, they take the async path.</summary>
    public override void Write(ReadOnlySpan<byte> buffer) => WriteAsync(buffer.ToArray()).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // Observed before the write completes: the bytes are committed to the client pipe either way.
        Observe(buffer.Span);
        if (DropUsageChunk && Counter is { } counter && counter.UsageOnlyEvents != _usageEventsSeen)
        {
            _usageEventsSeen = counter.UsageOnlyEvents;
            _dropPending = true;
        }

        if (!_holding)
        {
            return PassAsync(buffer, cancellationToken);
        }

        if (_heldLength == 0)
        {
            var end = EventEnd(buffer.Span);
            if (end == buffer.Length)
            {
                return PassAsync(buffer, cancellationToken); // the usual case: whole events
            }

            Keep(buffer.Span[end..]);
            return end == 0 ? ValueTask.CompletedTask : PassAsync(buffer[..end], cancellationToken);
        }

        return WriteAfterHeldAsync(buffer, cancellationToken);
    }

    /// <summary>Sends what is held (a stream that ended by itself without a final separator).</summary>
    public async ValueTask ReleaseHeldAsync(CancellationToken cancellationToken)
    {
        if (_heldLength > 0)
        {
            var held = _held.AsMemory(0, _heldLength);
            _heldLength = 0;
            await PassAsync(held, cancellationToken, ended: true);
        }

        ReturnHeld();
    }

    /// <summary>Forgets what is held: the stream was cut, and half an event must not reach the client.</summary>
    public void DropHeld()
    {
        _heldLength = 0;
        ReturnHeld();
    }

    /// <summary>Writes the gateway's own bytes (an end notice): never counted as tokens, and never
    /// racing a drain that is still counting the upstream's bytes.</summary>
    public ValueTask WriteOwnAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken) => SendAsync(bytes, cancellationToken, own: true);

    public override void Flush()
    {
        if (Resume is null)
        {
            _innerStream.Flush();
        }
    }

    public override Task FlushAsync(CancellationToken cancellationToken) =>
        Resume is { } log ? log.FlushAsync(_innerStream, cancellationToken) : _innerStream.FlushAsync(cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            DropHeld();
        }

        base.Dispose(disposing);
    }

    private async ValueTask WriteAfterHeldAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        // The event begun in an earlier write goes on here: put the new bytes behind it, send every
        // whole event, hold the rest. Only split events pay for this copy.
        Keep(buffer.Span);
        var end = EventEnd(_held.AsSpan(0, _heldLength));
        if (end > 0)
        {
            await PassAsync(_held.AsMemory(0, end), cancellationToken);
            _held.AsSpan(end, _heldLength - end).CopyTo(_held);
            _heldLength -= end;
        }

        if (_heldLength > MaxHeldBytes)
        {
            StopHolding();
            var held = _held.AsMemory(0, _heldLength);
            _heldLength = 0;
            await SendAsync(held, cancellationToken);
        }
    }

    /// <summary>The length of the prefix of <paramref name="bytes"/> that ends with a whole event.</summary>
    private int EventEnd(ReadOnlySpan<byte> bytes)
    {
        var newline = bytes.LastIndexOf((byte)'\n');
        if (_framing == Framing.Ndjson)
        {
            return newline + 1;
        }

        // SSE: an event ends with a blank line, "\n\n" or "\r\n\r\n" (or "\n\r\n" across line-ending styles).
        while (newline > 0)
        {
            if (bytes[newline - 1] == '\n' || (newline > 1 && bytes[newline - 1] == '\r' && bytes[newline - 2] == '\n'))
            {
                return newline + 1;
            }

            newline = bytes[..newline].LastIndexOf((byte)'\n');
        }

        return 0;
    }

    private void Keep(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        var needed = _heldLength + bytes.Length;
        if (_held is null || _held.Length < needed)
        {
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, 1024));
            if (_held is not null)
            {
                _held.AsSpan(0, _heldLength).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_held);
            }

            _held = bigger;
        }

        bytes.CopyTo(_held.AsSpan(_heldLength));
        _heldLength = needed;
    }

    private void StopHolding() => _holding = false;

    private void ReturnHeld()
    {
        if (_held is not null && _heldLength == 0)
        {
            ArrayPool<byte>.Shared.Return(_held);
            _held = null;
        }
    }

    /// <summary>Sends the upstream's whole events (all of them, at its end, when <paramref name="ended"/>),
    /// less a usage-only event that is to be dropped.</summary>
    private ValueTask PassAsync(ReadOnlyMemory<byte> events, CancellationToken cancellationToken, bool ended = false) =>
        _dropPending ? PassWithoutUsageAsync(events, cancellationToken, ended) : SendAsync(events, cancellationToken);

    private async ValueTask PassWithoutUsageAsync(ReadOnlyMemory<byte> events, CancellationToken cancellationToken, bool ended)
    {
        if (!FindUsageEvent(events.Span, ended, _adapter, out var start, out var end))
        {
            await SendAsync(events, cancellationToken); // its blank line has not come yet: it is held
            return;
        }

        _dropPending = false;
        if (start > 0)
        {
            await SendAsync(events[..start], cancellationToken);
        }

        if (end < events.Length)
        {
            await SendAsync(events[end..], cancellationToken);
        }
    }

    /// <summary>The byte range of the first SSE event (up to and including its blank line) whose data is a
    /// usage-only chunk of <paramref name="adapter"/>'s API; an event cut off by the end of the bytes counts only when the
    /// stream <paramref name="ended"/>.</summary>
    internal static bool FindUsageEvent(ReadOnlySpan<byte> events, bool ended, ApiAdapter adapter, out int start, out int end)
    {
        start = 0;
        end = 0;
        var usage = false;
        var position = 0;
        while (position < events.Length)
        {
            var newline = events[position..].IndexOf((byte)'\n');
            var lineEnd = newline < 0 ? events.Length : position + newline + 1;
            var line = events[position..lineEnd].TrimEnd("\r\n"u8);
            if (line.IsEmpty)
            {
                if (usage)
                {
                    end = lineEnd;
                    return true;
                }

                start = lineEnd;
            }
            else if (line.StartsWith("data:"u8))
            {
                var payload = line[5..].TrimStart((byte)' ');
                usage |= !payload.IsEmpty && payload[0] == (byte)'{' && adapter.IsUsageOnlyEvent(payload);
            }

            position = lineEnd;
        }

        end = events.Length;
        return usage && ended;
    }

    private ValueTask SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken, bool own = false)
    {
        Sent(bytes.Span);
        return Resume is { } log
            ? log.SendAsync(bytes, own, _innerStream, _response, _framing, cancellationToken)
            : _innerStream.WriteAsync(bytes, cancellationToken);
    }

    private void Sent(ReadOnlySpan<byte> bytes)
    {
        _sent += bytes.Length;
        for (var i = Math.Max(0, bytes.Length - 4); i < bytes.Length; i++)
        {
            _tail = (_tail << 8) | bytes[i];
        }
    }

    private void Observe(ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
        {
            return;
        }

        if (BytesWritten == 0)
        {
            FirstWriteAt = _time.GetTimestamp();
            _framing = Framings.FromContentType(_response?.ContentType);
            _holding = _framing is Framing.Sse or Framing.Ndjson;
            Counter = _countTokens ? _adapter.CreateCounter(_response?.ContentType, _keepText ? new ContentText() : null) : null;
        }

        Counter?.Observe(bytes);
        BytesWritten += bytes.Length;
    }
}
