using Gateway.Tokens;

namespace Gateway.Streams;

/// <summary>
/// <c>SessionStreams.IncludeUsage</c>, the request half: a streaming Chat Completions or Completions
/// request whose client did not send <c>stream_options</c> is forwarded with
/// <c>"stream_options":{"include_usage":true},</c> written right after its top-level <c>{</c>, so the
/// upstream ends the stream with its exact usage. The response half is <see cref="ResponseTap.DropUsageChunk"/>.
/// </summary>
/// <remarks>
/// Whether to add it must be known before the first byte goes upstream, and <c>stream</c> and
/// <c>stream_options</c> may come after a long <c>messages</c>. So the body is read into the request
/// pipe (consuming nothing, as the body-key peek does) until its top-level object closes, at most
/// <c>Gateway:Sessions:MaxBodyKeyBytes</c>; past that, or for a body that is not one JSON object, or
/// one with a top-level key the scan cannot read as written (escaped, or longer than 32 bytes), the
/// body is forwarded as sent. A client's own <c>stream_options</c>, whatever it says, is left alone:
/// adding a second one would make the request depend on which duplicate key the upstream's parser keeps.
/// </remarks>
internal static class IncludeUsage
{
    /// <summary>What is added after the body's opening brace.</summary>
    public static readonly byte[] Member = "\"stream_options\":{\"include_usage\":true},"u8.ToArray();

    /// <summary>Reads up to <paramref name="maxBytes"/> of a JSON body without consuming it; when usage
    /// should be asked for, replaces the body with one that carries <see cref="Member"/> and fixes
    /// Content-Length. True when it did. A client that goes away meanwhile leaves the body as it is.</summary>
    public static async ValueTask<bool> TryAddAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (!RequestBodyTap.IsJsonBody(request))
        {
            return false;
        }

        long insertAt;
        try
        {
            insertAt = await FindInsertPointAsync(request, maxBytes, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            return false; // the forwarder meets the same end reading the body, and reports it
        }

        if (insertAt < 0)
        {
            return false;
        }

        request.Body = new InsertingStream(request.Body, insertAt, Member);
        if (request.ContentLength is { } length)
        {
            request.ContentLength = length + Member.Length;
        }

        return true;
    }

    /// <summary>The offset just past the body's opening brace when the body is a streaming request
    /// without <c>stream_options</c>; else -1.</summary>
    public static async ValueTask<long> FindInsertPointAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        var reader = request.BodyReader;
        var scanner = new StreamOptionsScanner();
        long fed = 0;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            // Never past the cap, even when more has arrived: the outcome must not depend on how the bytes came.
            var upTo = Math.Min(buffer.Length, maxBytes);
            foreach (var segment in buffer.Slice(fed, upTo - fed))
            {
                scanner.Feed(segment.Span);
            }

            fed = upTo;
            if (scanner.Complete || scanner.Invalid || result.IsCompleted || buffer.Length >= maxBytes)
            {
                var insertAt = scanner is { Complete: true, Stream: true, HasStreamOptions: false, UnreadableKey: false }
                    ? OpeningBraceEnd(buffer)
                    : -1;
                reader.AdvanceTo(buffer.Start); // consume nothing: the forwarder sends every byte
                return insertAt;
            }

            reader.AdvanceTo(buffer.Start, buffer.End); // looked at everything, need more
        }
    }

    private static long OpeningBraceEnd(System.Buffers.ReadOnlySequence<byte> buffer)
    {
        long offset = 0;
        foreach (var segment in buffer)
        {
            foreach (var b in segment.Span)
            {
                offset++;
                if (b == '{')
                {
                    return offset;
                }
            }
        }

        return -1;
    }

    /// <summary>The top-level <c>stream</c> and whether a top-level <c>stream_options</c> is there.</summary>
    private sealed class StreamOptionsScanner : JsonScanner
    {
        public bool Stream { get; private set; }

        public bool HasStreamOptions { get; private set; }

        /// <summary>A top-level key that could name anything once decoded: escaped, or too long to read.</summary>
        public bool UnreadableKey { get; private set; }

        protected override int FieldFor(ReadOnlySpan<byte> key)
        {
            if (Depth != 1)
            {
                return -1;
            }

            if (key.IsEmpty || key.Contains((byte)'\\'))
            {
                UnreadableKey = true;
                return -1;
            }

            if (key.SequenceEqual("stream_options"u8))
            {
                HasStreamOptions = true;
                return -1;
            }

            return key.SequenceEqual("stream"u8) ? 0 : -1;
        }

        /// <summary>The last <c>stream</c> wins, as it does in most parsers.</summary>
        protected override void OnValue(int field, ReadOnlySpan<byte> json) => Stream = json.SequenceEqual("true"u8);
    }
}

/// <summary>A request body with bytes put in at one offset: the first bytes pass, then the insert, then
/// the rest, as the forwarder reads; nothing is held.</summary>
internal sealed class InsertingStream(Stream inner, long insertAt, byte[] insert) : Stream
{
    private long _before = insertAt;
    private int _inserted;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (TakeInsert(buffer.Span) is var taken and > 0)
        {
            return taken;
        }

        var read = await inner.ReadAsync(_before > 0 ? buffer[..(int)Math.Min(buffer.Length, _before)] : buffer, cancellationToken);
        _before -= Math.Min(_before, read);
        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(Span<byte> buffer)
    {
        if (TakeInsert(buffer) is var taken and > 0)
        {
            return taken;
        }

        var read = inner.Read(_before > 0 ? buffer[..(int)Math.Min(buffer.Length, _before)] : buffer);
        _before -= Math.Min(_before, read);
        return read;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    private int TakeInsert(Span<byte> buffer)
    {
        if (_before > 0 || _inserted == insert.Length || buffer.IsEmpty)
        {
            return 0;
        }

        var n = Math.Min(buffer.Length, insert.Length - _inserted);
        insert.AsSpan(_inserted, n).CopyTo(buffer);
        _inserted += n;
        return n;
    }
}
