using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// Hugging Face TGI's native <c>/generate_stream</c> and <c>/generate</c>: one <c>token</c> per event,
/// and on the last one <c>generated_text</c> and <c>details.generated_tokens</c>. The cap is
/// <c>parameters.max_new_tokens</c>. An interrupted client gets TGI's own
/// <c>{"error": …, "error_type": …}</c> event.
/// </summary>
internal sealed class TgiAdapter() : ApiAdapter(Api.Tgi, "tgi", "text_completion")
{
    public override bool Matches(string path) => EndsWith(path, "/generate_stream") || EndsWith(path, "/generate");

    public override ChunkReader Reader { get; } = new TgiReader();

    public override RequestFacts FromPath(string path, IQueryCollection query) => new(null, EndsWith(path, "/generate_stream"), null);

    public override RequestFields RequestFields { get; } = new("parameters.max_new_tokens");

    public override WholeBodyFields WholeBody { get; } = new WholeBodyFields()
        .CompletionAt("details.generated_tokens").EndWhenString("generated_text");

    /// <summary>Streaming is in the path (<c>/generate_stream</c>), not the body.</summary>
    public override RequestFacts FromBody(BodyScanner body) => new(body.Model, null, body.Cap);

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        json.WriteString("error", notice.Message);
        json.WriteString("error_type", notice.Type);
        json.WriteEndObject();
    }

    /// <summary>TGI writes <c>data:</c> without a space.</summary>
    protected override byte[] SseEvent(EndNotice notice) => Frame("data:"u8, notice, "\n\n"u8);

    private sealed class TgiReader : ChunkReader
    {
        public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            JsonChunks.Read(json, ref facts, text, static (ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text) =>
                ReadObject(ref reader, ref facts, text, whole: false));

        /// <summary>A <c>/generate</c> object, or the array some TGI versions answer with.</summary>
        public override void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            JsonChunks.Read(json, ref facts, text, static (ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text) =>
                JsonChunks.ReadObjects(ref reader, ref facts, text, static (ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text) =>
                    ReadObject(ref reader, ref facts, text, whole: true)));

        private static void ReadObject(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, bool whole)
        {
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("token"u8) && !whole)
                {
                    reader.Read();
                    ReadToken(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("generated_text"u8))
                {
                    reader.Read();
                    facts.End |= reader.TokenType == JsonTokenType.String;
                    if (whole)
                    {
                        JsonChunks.ReadText(ref reader, ref facts, text);
                    }
                }
                else if (reader.ValueTextEquals("details"u8))
                {
                    // details.generated_tokens; TGI reports no prompt count.
                    reader.Read();
                    JsonChunks.ReadUsage(ref reader, "generated_tokens"u8, promptField: [], ref facts.CompletionTokens, ref facts.PromptTokens);
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

        /// <summary>Each event is one generated token, even when its text is empty (part of a character);
        /// special tokens (end of sequence) are not output.</summary>
        private static void ReadToken(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
        {
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

            var special = false;
            var mark = text?.Length ?? 0;
            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("text"u8))
                {
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        text?.Append(ref reader);
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals("special"u8))
                {
                    reader.Read();
                    special = reader.TokenType == JsonTokenType.True;
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }

            if (special)
            {
                text?.Truncate(mark);
                return;
            }

            facts.HasContent = true;
        }
    }
}
