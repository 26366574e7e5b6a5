using System.Text.Json;
using Gateway.Tokens;
using Gateway.Utilities;

namespace Gateway.Protocols;

/// <summary>
/// OpenAI Chat Completions (<c>/v1/chat/completions</c>) and Completions (<c>/v1/completions</c>), as
/// vLLM, llama.cpp, TGI, Ollama and hosted APIs serve them: <c>data:</c> chunks whose
/// <c>choices[].delta</c> (or <c>text</c>) carry tokens, an optional final <c>usage</c>, a
/// <c>finish_reason</c> and <c>[DONE]</c>. An interrupted client gets <c>data: {"error": {...}}</c>,
/// which the OpenAI SDKs raise.
/// </summary>
internal sealed class ChatCompletionsAdapter(bool chat)
    : ApiAdapter(chat ? Api.ChatCompletions : Api.Completions, chat ? "chat_completions" : "completions", chat ? "chat" : "text_completion")
{
    public override bool Matches(string path) =>
        chat ? EndsWith(path, "/chat/completions") : EndsWith(path, "/completions") && !EndsWith(path, "/chat/completions");

    public override ChunkReader Reader => CompatibleChunkReader.Instance;

    /// <summary><c>max_completion_tokens</c> replaced <c>max_tokens</c>; servers take it first.</summary>
    public override RequestFields RequestFields => Fields;

    public override WholeBodyFields WholeBody => Answer;

    /// <summary><c>stream_options.include_usage</c> (<see cref="IncludeUsage"/>).</summary>
    public override IUsageRequest? AskForUsage(HttpRequest request) => IncludeUsage.Wrap(request);

    /// <summary>The chunk <c>include_usage</c> adds: <c>"choices":[]</c> and a <c>usage</c> object.</summary>
    public override bool IsUsageOnlyEvent(ReadOnlySpan<byte> json) => CompatibleChunkReader.IsUsageOnly(json);

    private static readonly RequestFields Fields = new("max_completion_tokens", "max_tokens");

    private static readonly WholeBodyFields Answer = new WholeBodyFields()
        .ModelAt("model").CompletionAt("usage.completion_tokens").PromptAt("usage.prompt_tokens").EndWhenString("choices[].finish_reason");

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice) => OpenAiErrors.Write(json, notice);
}

/// <summary>
/// <c>SessionStreams.IncludeUsage</c>, the request half: a streaming Chat Completions or Completions
/// request whose client did not send <c>stream_options</c> is forwarded with
/// <c>,"stream_options":{"include_usage":true}</c> written just before its top-level object's closing
/// <c>}</c>, so the upstream ends the stream with its exact usage. The response half is
/// <see cref="ChatCompletionsAdapter.IsUsageOnlyEvent"/>, applied by the response tap (Streams/).
/// </summary>
/// <remarks>
/// Whether to add it is known only at the object's end (<c>stream</c> and <c>stream_options</c> may come
/// after a long <c>messages</c>), but the body must not wait for its end before it goes upstream: it
/// streams through as it arrives, scanned on the way, and the member goes in where the object closes.
/// <c>Content-Length</c> is declared before that, so it always grows by the member's length: a body that
/// does not ask for usage gets as many spaces instead (before its closing <c>}</c>, or at its end when it
/// is not one JSON object), which every JSON parser skips. A client's own <c>stream_options</c>, whatever
/// it says, is left alone: a second one would make the request depend on which duplicate key the
/// upstream's parser keeps; so is a body with a top-level key the scan cannot read as written (escaped,
/// or longer than 32 bytes).
/// </remarks>
internal static class IncludeUsage
{
    /// <summary>What is put before the body's closing brace.</summary>
    public static readonly byte[] Member = ",\"stream_options\":{\"include_usage\":true}"u8.ToArray();

    /// <summary>What a body that does not ask for usage gets instead: as many spaces.</summary>
    internal static readonly byte[] Padding = [.. Enumerable.Repeat((byte)' ', Member.Length)];

    /// <summary>Replaces a JSON body with one that asks for usage if it turns out to be a streaming request
    /// without <c>stream_options</c>, and grows <c>Content-Length</c> to match; null for other bodies.</summary>
    public static RequestBody? Wrap(HttpRequest request)
    {
        if (!ApiAdapters.IsJsonBody(request))
        {
            return null;
        }

        var body = new RequestBody(request.Body);
        request.Body = body;
        if (request.ContentLength is { } length)
        {
            request.ContentLength = length + Member.Length;
        }

        return body;
    }

    /// <summary>
    /// The body as forwarded: every byte passes as it is read, scanned on the way; where the top-level object
    /// closes, <see cref="Member"/> or <see cref="Padding"/> goes in before the <c>}</c>; a body that never
    /// closes one gets <see cref="Padding"/> at its end. Only the closing brace and what follows it in the
    /// same read are held back, for one read.
    /// </summary>
    internal sealed class RequestBody(Stream inner) : ReadOnlyStream, IUsageRequest
    {
        private readonly StreamOptionsScanner _scanner = new();
        private byte[]? _held;
        private int _heldAt;
        private bool _placed;
        private bool _scanned;
        private bool _ended;
        private int _asked;

        /// <summary>True once the member went into the body: the upstream will send a usage-only chunk.</summary>
        public bool AskedUsage => Volatile.Read(ref _asked) == 1;

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (buffer.IsEmpty)
            {
                return 0;
            }

            var taken = TakeHeld(buffer.Span);
            if (taken > 0 || _ended)
            {
                return taken;
            }

            var read = await inner.ReadAsync(buffer, cancellationToken);
            return Pass(buffer.Span, read);
        }

        public override int Read(Span<byte> buffer)
        {
            if (buffer.IsEmpty)
            {
                return 0;
            }

            var taken = TakeHeld(buffer);
            if (taken > 0 || _ended)
            {
                return taken;
            }

            return Pass(buffer, inner.Read(buffer));
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        /// <summary>What the caller gets of <paramref name="read"/> bytes just read into <paramref name="buffer"/>.</summary>
        private int Pass(Span<byte> buffer, int read)
        {
            if (read == 0)
            {
                _ended = true;
                if (!_placed)
                {
                    _placed = true;
                    _held = Padding; // never closed one JSON object: the spaces go at the end
                }

                return TakeHeld(buffer);
            }

            if (_placed || _scanned || _scanner.Invalid)
            {
                return read;
            }

            var bytes = buffer[..read];
            _scanner.Feed(bytes);
            if (!_scanner.Complete)
            {
                return read;
            }

            _scanned = true;
            var close = _scanner.CompletedWithin - 1; // the top-level object's closing brace

            _placed = true;
            var asks = _scanner is { Stream: true, HasStreamOptions: false, UnreadableKey: false };
            var insert = asks ? Member : Padding;
            var held = new byte[insert.Length + read - close];
            insert.CopyTo(held, 0);
            bytes[close..].CopyTo(held.AsSpan(insert.Length));
            _held = held;
            _heldAt = 0;
            if (asks)
            {
                Volatile.Write(ref _asked, 1);
            }

            return close > 0 ? close : TakeHeld(buffer);
        }

        private int TakeHeld(Span<byte> buffer)
        {
            if (_held is null)
            {
                return 0;
            }

            var count = Math.Min(buffer.Length, _held.Length - _heldAt);
            _held.AsSpan(_heldAt, count).CopyTo(buffer);
            _heldAt += count;
            if (_heldAt == _held.Length)
            {
                _held = null;
                _heldAt = 0;
            }

            return count;
        }
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
