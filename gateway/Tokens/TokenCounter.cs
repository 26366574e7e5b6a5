using Gateway.Streams;

namespace Gateway.Tokens;

/// <summary>
/// Counts completion tokens in a response body as it passes to the client, never changing or holding
/// back a byte. Order of truth: the upstream's own count (<c>usage</c>, <c>eval_count</c>) when the
/// stream carries one, else one token per content-bearing chunk, which is what vLLM, llama.cpp and
/// Ollama emit. A tokenizer count, for backends that batch tokens, is made from <see cref="Text"/>
/// after the stream, off the request path.
/// </summary>
internal abstract class TokenCounter : IDisposable
{
    protected TokenCounter(ContentText? text) => Text = text;

    /// <summary>Chunks that carried completion text.</summary>
    public long ContentChunks { get; protected set; }

    /// <summary>The upstream's own completion-token count, if the stream carried one.</summary>
    public long? ReportedCompletionTokens { get; protected set; }

    /// <summary>The upstream's own prompt-token count, if the stream carried one.</summary>
    public long? ReportedPromptTokens { get; protected set; }

    /// <summary>The completion text, kept only for tokenizer counting.</summary>
    public ContentText? Text { get; }

    /// <summary>Completion tokens by the order of truth, tokenizer aside.</summary>
    public long Tokens => ReportedCompletionTokens ?? ContentChunks;

    /// <summary>Hot path: called with every write of the response body.</summary>
    public abstract void Observe(ReadOnlySpan<byte> bytes);

    /// <summary>Called once the body has ended (or been cut off), for bytes without a final newline.</summary>
    public virtual void Complete()
    {
    }

    public virtual void Dispose() => Text?.Dispose();

    /// <summary>The counter for a response's Content-Type.</summary>
    public static TokenCounter For(string? contentType, ContentText? text) => StreamProtocols.FromContentType(contentType) switch
    {
        StreamProtocol.Sse => new SseTokenCounter(text),
        StreamProtocol.Ndjson => new NdjsonTokenCounter(text),
        _ when IsJson(contentType) => new JsonBodyTokenCounter(text),
        _ => new TextTokenCounter(text),
    };

    protected void Apply(in ChunkFacts facts)
    {
        if (facts.HasContent)
        {
            ContentChunks++;
        }

        if (facts.CompletionTokens is { } completion)
        {
            ReportedCompletionTokens = completion;
        }

        if (facts.PromptTokens is { } prompt)
        {
            ReportedPromptTokens = prompt;
        }
    }

    private static bool IsJson(string? contentType) =>
        contentType is not null && contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);
}

/// <summary>A line-framed stream: lines are cut from the bytes as they pass, however the writes fall.</summary>
internal abstract class LineTokenCounter(ContentText? text) : TokenCounter(text)
{
    private readonly LineFramer _lines = new();

    public override void Observe(ReadOnlySpan<byte> bytes)
    {
        while (_lines.TryReadLine(ref bytes, out var line))
        {
            OnLine(line);
        }
    }

    public override void Complete() => OnLine(_lines.Pending);

    public override void Dispose()
    {
        _lines.Dispose();
        base.Dispose();
    }

    protected abstract void OnLine(ReadOnlySpan<byte> line);
}

/// <summary>Server-sent events: OpenAI chat and completion chunks, and plain <c>data:</c> text (the seed's SSE endpoint).</summary>
internal sealed class SseTokenCounter(ContentText? text) : LineTokenCounter(text)
{
    protected override void OnLine(ReadOnlySpan<byte> line)
    {
        if (!line.StartsWith("data:"u8))
        {
            return;
        }

        var payload = line[5..];
        if (payload.Length > 0 && payload[0] == (byte)' ')
        {
            payload = payload[1..];
        }

        if (payload.IsEmpty || payload.SequenceEqual("[DONE]"u8))
        {
            return;
        }

        if (payload[0] == (byte)'{')
        {
            Apply(ChunkParser.Parse(payload, Text));
            return;
        }

        // Plain text events: one token per event, as the seed's /api/sse-stream sends them.
        ContentChunks++;
        Text?.Append(payload);
    }
}

/// <summary>Newline-delimited JSON: Ollama's <c>/api/chat</c> and <c>/api/generate</c>.</summary>
internal sealed class NdjsonTokenCounter(ContentText? text) : LineTokenCounter(text)
{
    protected override void OnLine(ReadOnlySpan<byte> line)
    {
        if (!line.IsEmpty)
        {
            Apply(ChunkParser.Parse(line, Text));
        }
    }
}

/// <summary>A plain streamed body (the seed's chunked text): one token per upstream chunk.</summary>
internal sealed class TextTokenCounter(ContentText? text) : TokenCounter(text)
{
    public override void Observe(ReadOnlySpan<byte> bytes)
    {
        if (!bytes.IsEmpty)
        {
            ContentChunks++;
            Text?.Append(bytes);
        }
    }
}

/// <summary>A whole JSON response (<c>"stream": false</c>): parsed once it ends, for its <c>usage</c> or <c>eval_count</c>.</summary>
internal sealed class JsonBodyTokenCounter(ContentText? text) : TokenCounter(text)
{
    private const int MaxBodyBytes = 4 * 1024 * 1024;
    private readonly ContentText _body = new();

    public override void Observe(ReadOnlySpan<byte> bytes) => _body.Append(bytes);

    public override void Complete()
    {
        if (!_body.Truncated && _body.Utf8.Length <= MaxBodyBytes)
        {
            var facts = ChunkParser.Parse(_body.Utf8, Text);
            Apply(facts);
        }
    }

    public override void Dispose()
    {
        _body.Dispose();
        base.Dispose();
    }
}
