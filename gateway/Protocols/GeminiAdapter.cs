using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// Gemini's <c>models/{model}:streamGenerateContent</c> (<c>alt=sse</c>, CRLF-framed) and
/// <c>:generateContent</c>, on Google AI and Vertex paths: the model and whether it streams are in the
/// path; chunks carry <c>candidates[].content.parts[].text</c> and a running
/// <c>usageMetadata.candidatesTokenCount</c> (plus <c>thoughtsTokenCount</c>); a <c>finishReason</c>
/// marks the real end. The cap is <c>generationConfig.maxOutputTokens</c>. An interrupted client gets
/// Google's <c>{"error":{"code","message","status","details"}}</c> as its last chunk.
/// </summary>
internal sealed class GeminiAdapter() : ApiAdapter(Api.Gemini, "gemini", "generate_content")
{
    private const string Stream = ":streamGenerateContent";
    private const string Generate = ":generateContent";

    public override bool Matches(string path) => EndsWith(path, Stream) || EndsWith(path, Generate);

    public override ChunkReader Reader { get; } = new GeminiReader();

    public override RequestFacts FromPath(string path, IQueryCollection query)
    {
        var streams = EndsWith(path, Stream);
        var end = path.Length - (streams ? Stream.Length : Generate.Length);
        var start = path.LastIndexOf('/', end - 1) + 1;
        var model = end - start is > 0 and <= BodyScanner.MaxModelBytes ? path[start..end] : null;
        return new RequestFacts(model, streams, null);
    }

    public override RequestFields RequestFields { get; } = new(
        "generationConfig.maxOutputTokens", "generationConfig.max_output_tokens", "generation_config.maxOutputTokens", "generation_config.max_output_tokens");

    /// <summary>Completion tokens are the candidates' and the thoughts' together.</summary>
    public override WholeBodyFields WholeBody { get; } = new WholeBodyFields()
        .ModelAt("modelVersion", "model")
        .CompletionAt("usageMetadata.candidatesTokenCount", "usageMetadata.thoughtsTokenCount")
        .PromptAt("usageMetadata.promptTokenCount")
        .EndWhenString("candidates[].finishReason");

    /// <summary>The model and streaming are in the path, not the body.</summary>
    public override RequestFacts FromBody(BodyScanner body) => new(null, null, body.Cap);

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        json.WriteStartObject("error");
        json.WriteNumber("code", notice.StatusCode);
        json.WriteString("message", notice.Message);
        json.WriteString("status", Status(notice.StatusCode));
        json.WriteStartArray("details");
        json.WriteStartObject();
        json.WriteString("@type", "type.googleapis.com/google.rpc.ErrorInfo");
        json.WriteString("reason", notice.Code);
        json.WriteString("domain", "llm-gateway");
        json.WriteStartObject("metadata");
        json.WriteString("type", notice.Type);
        json.WriteEndObject();
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndObject();
    }

    /// <summary>Google's servers frame SSE with CRLF; so does the error chunk.</summary>
    protected override byte[] SseEvent(EndNotice notice) => Frame("data: "u8, notice, "\r\n\r\n"u8);

    /// <summary>The google.rpc.Code name Google's APIs send with an HTTP status.</summary>
    private static string Status(int statusCode) => statusCode switch
    {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        502 or 503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };

    private sealed class GeminiReader : ChunkReader
    {
        public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            ReadBody(json, ref facts, text);

        /// <summary>One response object, or the JSON array that <c>streamGenerateContent</c> sends without <c>alt=sse</c>.</summary>
        public override void ReadBody(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
            JsonChunks.Read(json, ref facts, text, static (ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text) =>
                JsonChunks.ReadObjects(ref reader, ref facts, text, ReadChunk));

        private static void ReadChunk(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
        {
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("candidates"u8))
                {
                    reader.Read();
                    ReadCandidates(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("usageMetadata"u8))
                {
                    reader.Read();
                    ReadUsage(ref reader, ref facts);
                }
                else if (reader.ValueTextEquals("modelVersion"u8))
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

        private static void ReadCandidates(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
        {
            if (!JsonChunks.IsArray(ref reader))
            {
                return;
            }

            while (JsonChunks.NextObject(ref reader))
            {
                while (JsonChunks.NextProperty(ref reader))
                {
                    if (reader.ValueTextEquals("content"u8))
                    {
                        // content.parts[].text
                        reader.Read();
                        JsonChunks.ReadField(ref reader, ref facts, text, "parts"u8, JsonChunks.ReadTextParts);
                    }
                    else if (reader.ValueTextEquals("finishReason"u8))
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
        }

        /// <summary>Running totals: the last chunk's are the answer's. Thoughts are generated tokens too.</summary>
        private static void ReadUsage(ref Utf8JsonReader reader, ref ChunkFacts facts)
        {
            if (!JsonChunks.IsObject(ref reader))
            {
                return;
            }

            long? candidates = null;
            long? thoughts = null;
            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("candidatesTokenCount"u8))
                {
                    reader.Read();
                    candidates = JsonChunks.ReadCount(ref reader);
                }
                else if (reader.ValueTextEquals("thoughtsTokenCount"u8))
                {
                    reader.Read();
                    thoughts = JsonChunks.ReadCount(ref reader);
                }
                else if (reader.ValueTextEquals("promptTokenCount"u8))
                {
                    reader.Read();
                    facts.PromptTokens = JsonChunks.ReadCount(ref reader) ?? facts.PromptTokens;
                }
                else
                {
                    JsonChunks.SkipValue(ref reader);
                }
            }

            if (candidates is not null || thoughts is not null)
            {
                facts.CompletionTokens = (candidates ?? 0) + (thoughts ?? 0);
            }
        }
    }
}
