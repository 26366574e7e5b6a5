using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// llama.cpp's native <c>/completion</c>: <c>data:</c> events with <c>content</c>, the last with
/// <c>stop: true</c> and <c>tokens_predicted</c>. The cap is <c>n_predict</c>. An interrupted client
/// gets llama.cpp's own <c>{"error": {"code", "message", "type"}}</c> event.
/// </summary>
internal sealed class LlamaCppAdapter() : ApiAdapter(Api.LlamaCpp, "llamacpp", "text_completion")
{
    public override bool Matches(string path) => EndsWith(path, "/completion");

    public override ChunkReader Reader { get; } = new LlamaCppReader();

    /// <summary><c>n_predict</c>, or the OpenAI name llama-server also takes.</summary>
    public override RequestFields RequestFields { get; } = new("n_predict", "max_tokens");

    public override WholeBodyFields WholeBody { get; } = new WholeBodyFields()
        .ModelAt("model").CompletionAt("tokens_predicted").PromptAt("tokens_evaluated").EndWhenTrue("stop");

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteNumber("code", notice.StatusCode);
        json.WriteString("message", notice.Message);
        json.WriteString("type", notice.Type);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private sealed class LlamaCppReader : ChunkReader
    {
        public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            JsonChunks.Read(json, ref facts, text, ReadChunk);

        private static void ReadChunk(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
        {
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return;
            }

            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("content"u8))
                {
                    reader.Read();
                    JsonChunks.ReadText(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("stop"u8))
                {
                    reader.Read();
                    facts.End |= reader.TokenType == JsonTokenType.True;
                }
                else if (reader.ValueTextEquals("tokens_predicted"u8))
                {
                    reader.Read();
                    facts.CompletionTokens = JsonChunks.ReadCount(ref reader) ?? facts.CompletionTokens;
                }
                else if (reader.ValueTextEquals("tokens_evaluated"u8))
                {
                    reader.Read();
                    facts.PromptTokens = JsonChunks.ReadCount(ref reader) ?? facts.PromptTokens;
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    JsonChunks.ReadModel(ref reader, ref facts);
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
    }
}
