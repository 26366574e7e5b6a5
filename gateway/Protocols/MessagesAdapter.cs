using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// Anthropic Messages (<c>/v1/messages</c>), as Anthropic and llama.cpp serve it: named SSE events,
/// <c>content_block_delta</c> carrying output, the prompt count in <c>message_start</c>, the running
/// output total in <c>message_delta.usage</c>, and <c>message_stop</c> at a real end. The cap is
/// <c>max_tokens</c>. An interrupted client gets <c>event: error</c> with
/// <c>{"type":"error","error":{"type":…,"message":…}}</c>, which the Anthropic SDKs raise.
/// </summary>
internal sealed class MessagesAdapter() : ApiAdapter(Api.Messages, "messages", "chat")
{
    public override bool Matches(string path) => EndsWith(path, "/messages");

    public override ChunkReader Reader { get; } = new MessagesReader();

    public override RequestFacts FromBody(BodyScanner body) => new(body.Model, body.Stream, body.Number(BodyField.MaxTokens));

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        json.WriteString("type", "error");
        json.WriteStartObject("error");
        json.WriteString("type", notice.Type);
        json.WriteString("message", notice.Message);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    protected override byte[] SseEvent(EndNotice notice) => Frame("event: error\ndata: "u8, notice, "\n\n"u8);

    private sealed class MessagesReader : ChunkReader
    {
        public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            Read(json, ref facts, text, whole: false, eventName);

        /// <summary>The whole message object of <c>"stream": false</c>.</summary>
        public override void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            Read(json, ref facts, text, whole: true, default);

        private static void Read(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text, bool whole, ReadOnlySpan<byte> eventName)
        {
            var mark = text?.Length ?? 0;
            var type = eventName;
            long? outputTokens = null;
            try
            {
                var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
                if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                {
                    return;
                }

                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("type"u8))
                    {
                        reader.Read();
                        if (type.IsEmpty && reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped)
                        {
                            type = reader.ValueSpan;
                        }
                    }
                    else if (reader.ValueTextEquals("message"u8))
                    {
                        reader.Read();
                        ReadMessageStart(ref reader, ref facts);
                    }
                    else if (reader.ValueTextEquals("delta"u8))
                    {
                        reader.Read();
                        ReadDelta(ref reader, ref facts, text);
                    }
                    else if (reader.ValueTextEquals("usage"u8))
                    {
                        reader.Read();
                        ReadUsage(ref reader, ref facts, ref outputTokens);
                    }
                    else if (reader.ValueTextEquals("error"u8))
                    {
                        reader.Read();
                        facts.Error |= reader.TokenType != JsonTokenType.Null;
                        reader.Skip();
                    }
                    else if (whole && reader.ValueTextEquals("model"u8))
                    {
                        reader.Read();
                        JsonChunks.ReadModel(ref reader, ref facts);
                    }
                    else if (whole && reader.ValueTextEquals("content"u8))
                    {
                        reader.Read();
                        JsonChunks.ReadTextParts(ref reader, ref facts, text, "text"u8);
                    }
                    else if (whole && reader.ValueTextEquals("stop_reason"u8))
                    {
                        reader.Read();
                        facts.End |= reader.TokenType == JsonTokenType.String;
                    }
                    else
                    {
                        JsonChunks.SkipValue(ref reader);
                    }
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                text?.Truncate(mark);
                facts = default(ChunkFacts) with { WantModel = facts.WantModel };
                return;
            }

            // message_start reports a placeholder output count; message_delta (and a whole message) the total so far.
            if (outputTokens is { } output && (whole || type.SequenceEqual("message_delta"u8)))
            {
                facts.CompletionTokens = output;
            }

            facts.End |= type.SequenceEqual("message_stop"u8);
            facts.Error |= type.SequenceEqual("error"u8);
        }

        /// <summary><c>message_start.message</c>: the model and the prompt count.</summary>
        private static void ReadMessageStart(ref Utf8JsonReader reader, ref ChunkFacts facts)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                return;
            }

            long? ignored = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    JsonChunks.ReadModel(ref reader, ref facts);
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    ReadUsage(ref reader, ref facts, ref ignored);
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }
        }

        /// <summary><c>content_block_delta.delta</c>: text, tool input or thinking.</summary>
        private static void ReadDelta(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                return;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("text"u8) || reader.ValueTextEquals("partial_json"u8) || reader.ValueTextEquals("thinking"u8))
                {
                    reader.Read();
                    JsonChunks.ReadText(ref reader, ref facts, text);
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }
        }

        private static void ReadUsage(ref Utf8JsonReader reader, ref ChunkFacts facts, ref long? outputTokens)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                return;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("output_tokens"u8))
                {
                    reader.Read();
                    outputTokens = JsonChunks.ReadCount(ref reader) ?? outputTokens;
                }
                else if (reader.ValueTextEquals("input_tokens"u8))
                {
                    reader.Read();
                    facts.PromptTokens = JsonChunks.ReadCount(ref reader) ?? facts.PromptTokens;
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }
        }
    }
}
