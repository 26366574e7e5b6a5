using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// OpenAI Responses (<c>/v1/responses</c>): named SSE events whose <c>*.delta</c> events carry output
/// (<c>response.output_text.delta</c>, reasoning, refusals, tool arguments), ending with
/// <c>response.completed</c> or <c>response.incomplete</c>, whose <c>response.usage</c> holds the
/// exact count. The cap is <c>max_output_tokens</c>. An interrupted client gets an <c>error</c> event
/// that carries both the Responses error fields and an <c>error</c> object, so the SDKs that read
/// either raise it.
/// </summary>
internal sealed class ResponsesAdapter() : ApiAdapter(Api.Responses, "responses", "chat")
{
    public override bool Matches(string path) => EndsWith(path, "/responses");

    public override ChunkReader Reader { get; } = new ResponsesReader();

    public override RequestFields RequestFields { get; } = new("max_output_tokens");

    public override WholeBodyFields WholeBody { get; } = new WholeBodyFields()
        .ModelAt("model").CompletionAt("usage.output_tokens").PromptAt("usage.input_tokens").StatusAt("status");

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice) => OpenAiErrors.Write(json, notice);

    protected override byte[] SseEvent(EndNotice notice) => Frame("event: error\ndata: "u8, notice, "\n\n"u8, ErrorEvent);

    private static void ErrorEvent(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        json.WriteString("type", "error");
        json.WriteString("code", notice.Code);
        json.WriteString("message", notice.Message);
        json.WriteNull("param");
        OpenAiErrors.WriteErrorProperty(json, notice);
        json.WriteEndObject();
    }

    private sealed class ResponsesReader : ChunkReader
    {
        private enum Kind : byte
        {
            Other,
            Delta,
            End,
            Error,
        }

        public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text)
        {
            var mark = text?.Length ?? 0;
            var state = new EventState { Named = !eventName.IsEmpty, Kind = eventName.IsEmpty ? Kind.Other : Classify(eventName) };
            if (!JsonChunks.Read(json, ref facts, text, ref state, ReadEventObject) || !state.Object)
            {
                return;
            }

            if (state.Kind != Kind.Delta && state.Delta)
            {
                // A "delta" outside a *.delta event (audio, or an unknown event) is not text output.
                text?.Truncate(mark);
                facts.HasContent = false;
            }

            facts.End |= state.Kind == Kind.End;
            facts.Error |= state.Kind == Kind.Error;
        }

        /// <summary>The whole response object of <c>"stream": false</c>.</summary>
        public override void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            JsonChunks.Read(json, ref facts, text, static (ref reader, ref facts, text) => ReadResponse(ref reader, ref facts, text, whole: true));

        private static void ReadEventObject(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, ref EventState state)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            state.Object = true;
            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("type"u8))
                {
                    reader.Read();
                    if (!state.Named && reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped)
                    {
                        state.Kind = Classify(reader.ValueSpan);
                    }
                }
                else if (reader.ValueTextEquals("delta"u8))
                {
                    reader.Read();
                    JsonChunks.ReadText(ref reader, ref facts, text);
                    state.Delta = facts.HasContent;
                }
                else if (reader.ValueTextEquals("response"u8))
                {
                    reader.Read();
                    ReadResponse(ref reader, ref facts, text: null, whole: false);
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    JsonChunks.ReadError(ref reader, ref facts);
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }
        }

        private static Kind Classify(ReadOnlySpan<byte> type) =>
            type.EndsWith(".delta"u8) && !type.StartsWith("response.audio"u8) ? Kind.Delta
            : type.SequenceEqual("response.completed"u8) || type.SequenceEqual("response.incomplete"u8) ? Kind.End
            : type.SequenceEqual("response.failed"u8) || type.SequenceEqual("error"u8) ? Kind.Error
            : Kind.Other;

        /// <summary>A response object: its model, usage, status and (for a whole body) output text.</summary>
        private static void ReadResponse(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, bool whole)
        {
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

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
                    JsonChunks.ReadUsage(ref reader, "output_tokens"u8, "input_tokens"u8, ref facts.CompletionTokens, ref facts.PromptTokens);
                }
                else if (reader.ValueTextEquals("status"u8) && whole)
                {
                    reader.Read();
                    facts.End |= reader.ValueTextEquals("completed"u8) || reader.ValueTextEquals("incomplete"u8);
                    facts.Error |= reader.ValueTextEquals("failed"u8);
                }
                else if (reader.ValueTextEquals("output"u8) && whole)
                {
                    // output[].content[].text
                    reader.Read();
                    JsonChunks.ReadFieldOfEach(ref reader, ref facts, text, "content"u8, JsonChunks.ReadTextParts);
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }
        }

        /// <summary>What one event's JSON said that its name may not have: its type, whether a delta held text.</summary>
        private struct EventState
        {
            public bool Named;
            public Kind Kind;
            public bool Delta;
            public bool Object;
        }
    }
}
