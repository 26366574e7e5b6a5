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

    public override RequestFacts FromBody(BodyScanner body) => new(body.Model, body.Stream, body.Number(BodyField.MaxOutputTokens));

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
            var kind = eventName.IsEmpty ? Kind.Other : Classify(eventName);
            var delta = false;
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
                        if (eventName.IsEmpty && reader.TokenType == JsonTokenType.String && !reader.ValueIsEscaped)
                        {
                            kind = Classify(reader.ValueSpan);
                        }
                    }
                    else if (reader.ValueTextEquals("delta"u8))
                    {
                        reader.Read();
                        JsonChunks.ReadText(ref reader, ref facts, text);
                        delta = facts.HasContent;
                    }
                    else if (reader.ValueTextEquals("response"u8))
                    {
                        reader.Read();
                        ReadResponse(ref reader, ref facts, text: null, whole: false);
                    }
                    else if (reader.ValueTextEquals("error"u8))
                    {
                        reader.Read();
                        facts.Error |= reader.TokenType != JsonTokenType.Null;
                        reader.Skip();
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

            if (kind != Kind.Delta && delta)
            {
                // A "delta" outside a *.delta event (audio, or an unknown event) is not text output.
                text?.Truncate(mark);
                facts.HasContent = false;
            }

            facts.End |= kind == Kind.End;
            facts.Error |= kind == Kind.Error;
        }

        /// <summary>The whole response object of <c>"stream": false</c>.</summary>
        public override void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text)
        {
            var mark = text?.Length ?? 0;
            try
            {
                var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
                if (reader.Read())
                {
                    ReadResponse(ref reader, ref facts, text, whole: true);
                }
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                text?.Truncate(mark);
                facts = default(ChunkFacts) with { WantModel = facts.WantModel };
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
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                reader.Skip();
                return;
            }

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
                    ReadUsage(ref reader, ref facts);
                }
                else if (reader.ValueTextEquals("status"u8) && whole)
                {
                    reader.Read();
                    facts.End |= reader.ValueTextEquals("completed"u8) || reader.ValueTextEquals("incomplete"u8);
                    facts.Error |= reader.ValueTextEquals("failed"u8);
                }
                else if (reader.ValueTextEquals("output"u8) && whole)
                {
                    reader.Read();
                    ReadOutput(ref reader, ref facts, text);
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }
        }

        private static void ReadUsage(ref Utf8JsonReader reader, ref ChunkFacts facts)
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
                    facts.CompletionTokens = JsonChunks.ReadCount(ref reader) ?? facts.CompletionTokens;
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

        /// <summary><c>output[].content[].text</c> of a whole response.</summary>
        private static void ReadOutput(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
        {
            if (reader.TokenType != JsonTokenType.StartArray)
            {
                reader.Skip();
                return;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
            {
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("content"u8))
                    {
                        reader.Read();
                        JsonChunks.ReadTextParts(ref reader, ref facts, text, "text"u8);
                    }
                    else
                    {
                        JsonChunks.SkipValue(ref reader);
                    }
                }
            }
        }
    }
}
