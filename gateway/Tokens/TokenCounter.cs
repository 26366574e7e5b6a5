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

    /// <summary>Usage-only events seen (<see cref="ChunkFacts.UsageOnly"/>).</summary>
    public int UsageOnlyEvents { get; private set; }

    /// <summary>The completion text, kept only for tokenizer counting.</summary>
    public ContentText? Text { get; }

    /// <summary>The stream carried its API's own mark of a finished answer.</summary>
    public bool SawEnd { get; protected set; }

    /// <summary>The upstream reported an error inside the stream.</summary>
    public bool SawError { get; protected set; }

    /// <summary>The model the response itself names, for requests that did not say (or could not be read).</summary>
    public string? ResponseModel { get; private set; }

    /// <summary>Completion tokens by the order of truth, tokenizer aside.</summary>
    public long Tokens => ReportedCompletionTokens ?? ContentChunks;

    /// <summary>Hot path: called with every write of the response body.</summary>
    public abstract void Observe(ReadOnlySpan<byte> bytes);

    private bool _completed;

    /// <summary>Called once the body has ended (or been cut off), for bytes without a final newline; later calls do nothing.</summary>
    public void Complete()
    {
        if (!_completed)
        {
            _completed = true;
            OnComplete();
        }
    }

    protected virtual void OnComplete()
    {
    }

    public virtual void Dispose() => Text?.Dispose();

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

        if (facts.UsageOnly)
        {
            UsageOnlyEvents++;
        }

        SawEnd |= facts.End;
        SawError |= facts.Error;
        ResponseModel ??= facts.Model;
    }

    /// <summary>Facts for the next event: asks for the model until one was found (one string per stream).</summary>
    protected ChunkFacts NewFacts() => new() { WantModel = ResponseModel is null };
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

    protected override void OnComplete() => OnLine(_lines.Pending);

    public override void Dispose()
    {
        _lines.Dispose();
        base.Dispose();
    }

    protected abstract void OnLine(ReadOnlySpan<byte> line);
}

/// <summary>Server-sent events: each <c>data:</c> payload goes to the API's reader with the name of its
/// event (<c>event:</c> lines, as Anthropic and the Responses API send them).</summary>
internal sealed class SseTokenCounter(ChunkReader reader, ContentText? text) : LineTokenCounter(text)
{
    private const int MaxEventNameBytes = 64;
    private readonly byte[] _eventName = new byte[MaxEventNameBytes];
    private int _eventNameLength;

    protected override void OnLine(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty)
        {
            _eventNameLength = 0; // the event ended
            return;
        }

        if (line.StartsWith("event:"u8))
        {
            var name = Field(line[6..]);
            _eventNameLength = name.Length <= MaxEventNameBytes ? name.Length : 0;
            name[.._eventNameLength].CopyTo(_eventName);
            return;
        }

        if (!line.StartsWith("data:"u8))
        {
            return;
        }

        var payload = Field(line[5..]);
        if (payload.IsEmpty)
        {
            return;
        }

        var facts = NewFacts();
        if (payload[0] == (byte)'{')
        {
            reader.ReadEvent(_eventName.AsSpan(0, _eventNameLength), payload, ref facts, Text);
        }
        else
        {
            reader.ReadText(payload, ref facts, Text);
        }

        Apply(facts);
    }

    private static ReadOnlySpan<byte> Field(ReadOnlySpan<byte> value) =>
        value.Length > 0 && value[0] == (byte)' ' ? value[1..] : value;
}

/// <summary>Newline-delimited JSON: Ollama's <c>/api/chat</c> and <c>/api/generate</c>.</summary>
internal sealed class NdjsonTokenCounter(ChunkReader reader, ContentText? text) : LineTokenCounter(text)
{
    protected override void OnLine(ReadOnlySpan<byte> line)
    {
        if (!line.IsEmpty)
        {
            var facts = NewFacts();
            reader.ReadEvent(default, line, ref facts, Text);
            Apply(facts);
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

/// <summary>
/// A whole JSON response (<c>"stream": false</c>): its counts and end mark found as it passes, without
/// holding it, at the fields its API declares (<see cref="ResponseScanner"/>). Only with tokenizer counting, which
/// needs the answer's text, is the body kept (up to 4 MiB) and read by the API's reader at its end.
/// </summary>
internal sealed class JsonBodyTokenCounter(ChunkReader reader, WholeBodyFields fields, ContentText? text) : TokenCounter(text)
{
    private const int MaxBodyBytes = 4 * 1024 * 1024;
    private readonly ContentText? _body = text is null ? null : new ContentText();
    private readonly ResponseScanner? _scanner = text is null ? new ResponseScanner(fields) : null;

    public override void Observe(ReadOnlySpan<byte> bytes)
    {
        if (_scanner is not null)
        {
            _scanner.Feed(bytes);
        }
        else
        {
            _body!.Append(bytes);
        }
    }

    protected override void OnComplete()
    {
        if (_scanner is not null)
        {
            if (_scanner.Complete)
            {
                Apply(_scanner.Finish(wantModel: ResponseModel is null));
            }

            return;
        }

        if (!_body!.Truncated && _body.Utf8.Length <= MaxBodyBytes)
        {
            var facts = NewFacts();
            reader.ReadBody(_body.Utf8, ref facts, Text);
            Apply(facts);
        }
    }

    public override void Dispose()
    {
        _body?.Dispose();
        base.Dispose();
    }
}
