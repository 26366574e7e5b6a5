namespace Gateway.Tokens;

/// <summary>What one streamed event (or a whole JSON response) says about the completion.</summary>
internal struct ChunkFacts
{
    /// <summary>The event carries generated output: text, reasoning, tool-call arguments.</summary>
    public bool HasContent;

    /// <summary>The upstream's own count of completion tokens so far (a final usage, or a running total).</summary>
    public long? CompletionTokens;

    /// <summary>The upstream's own count of prompt tokens.</summary>
    public long? PromptTokens;

    /// <summary>The event is the API's own mark of a finished answer (<c>finish_reason</c>, <c>done</c>,
    /// <c>message_stop</c>, <c>response.completed</c>, <c>finishReason</c>, ...).</summary>
    public bool End;

    /// <summary>The upstream reported an error inside the stream: its client has already been told.</summary>
    public bool Error;

    /// <summary>The event carries only usage (<c>"choices":[]</c> and a <c>usage</c> object): the extra chunk
    /// that <c>stream_options.include_usage</c> asks for.</summary>
    public bool UsageOnly;

    /// <summary>Set by the counter while it has no model: readers then take the one the response names.</summary>
    public bool WantModel;

    /// <summary>The model the response names, when <see cref="WantModel"/> asked for it.</summary>
    public string? Model;
}

/// <summary>
/// One API's reading of its events. Hot path: called once per event with the event's JSON, over the
/// bytes, with <see cref="System.Text.Json.Utf8JsonReader"/>; should not allocate. Malformed JSON
/// yields no facts, and the bytes still pass unchanged.
/// </summary>
internal abstract class ChunkReader
{
    /// <summary>One streamed event's JSON: an SSE <c>data:</c> payload (with the event's name, or empty)
    /// or an NDJSON line.</summary>
    public abstract void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text);

    /// <summary>A whole JSON response (<c>"stream": false</c>).</summary>
    public virtual void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
        ReadEvent(default, json, ref facts, text);

    /// <summary>An SSE <c>data:</c> payload that is not JSON: <c>[DONE]</c> ends OpenAI streams; plain text
    /// events (the seed's <c>/api/sse-stream</c>) are a token each.</summary>
    public virtual void ReadText(ReadOnlySpan<byte> payload, ref ChunkFacts facts, ContentText? text)
    {
        if (payload.SequenceEqual("[DONE]"u8))
        {
            facts.End = true;
            return;
        }

        facts.HasContent = true;
        text?.Append(payload);
    }
}
