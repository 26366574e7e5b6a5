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

    public override RequestFields RequestFields { get; } = new("max_tokens");

    public override WholeBodyFields WholeBody { get; } = new WholeBodyFields()
        .ModelAt("model").CompletionAt("usage.output_tokens").PromptAt("usage.input_tokens").EndWhenString("stop_reason");

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
        private enum Kind : byte
        {
            Other,
            MessageDelta,
            MessageStop,
            Error,
        }

        public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            Read(json, ref facts, text, whole: false, eventName);

        /// <summary>The whole message object of <c>"stream": false</c>.</summary>
        public override void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            Read(json, ref facts, text, whole: true, default);

        private static void Read(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text, bool whole, ReadOnlySpan<byte> eventName)
        {
            var state = new EventState { Whole = whole, Typed = !eventName.IsEmpty, Kind = Classify(eventName) };
            if (!JsonChunks.Read(json, ref facts, text, ref state, ReadObject) || !state.Object)
            {
                return;
            }

            // message_start reports a placeholder output count; message_delta (and a whole message) the total so far.
            if (state.OutputTokens is { } output && (whole || state.Kind == Kind.MessageDelta))
            {
                facts.CompletionTokens = output;
            }

            facts.End |= state.Kind == Kind.MessageStop;
            facts.Error |= state.Kind == Kind.Error;
        }

        private static Kind Classify(ReadOnlySpan<byte> type) =>
            type.SequenceEqual("message_delta"u8) ? Kind.MessageDelta
            : type.SequenceEqual("message_stop"u8) ? Kind.MessageStop
            : type.SequenceEqual("error"u8) ? Kind.Error
            : Kind.Other;

        private static void ReadObject(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, ref EventState state)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            state.Object = true;
            var whole = state.Whole;
            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (!state.Typed && reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped)
                    {
                        state.Kind = Classify(reader.ValueSpan);
                        state.Typed = reader.ValueSpan.Length > 0;
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
                    ReadUsage(ref reader, ref facts, ref state.OutputTokens);
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    JsonChunks.ReadError(ref reader, ref facts);
                }
                else if (whole && reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    JsonChunks.ReadModel(ref reader, ref facts);
                }
                else if (whole && reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    JsonChunks.ReadTextParts(ref reader, ref facts, text);
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

        /// <summary><c>message_start.message</c>: the model and the prompt count.</summary>
        private static void ReadMessageStart(ref Utf8JsonReader reader, ref ChunkFacts facts)
        {
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

            long? ignored = null;
            while (JsonChunks.NextProperty(ref reader))
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
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

            while (JsonChunks.NextProperty(ref reader))
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

        /// <summary>The output count is kept aside: only some events' count is the total.</summary>
        private static void ReadUsage(ref Utf8JsonReader reader, ref ChunkFacts facts, ref long? outputTokens) =>
            JsonChunks.ReadUsage(ref reader, "output_tokens"u8, "input_tokens"u8, ref outputTokens, ref facts.PromptTokens);

        /// <summary>What one event's JSON said that its name may not have, and the output count it reported.</summary>
        private struct EventState
        {
            public bool Whole;
            public bool Typed;
            public Kind Kind;
            public long? OutputTokens;
            public bool Object;
        }
    }
}
