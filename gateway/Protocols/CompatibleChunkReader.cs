using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// Reads one JSON value of any of the shapes OpenAI-compatible servers and Ollama stream (chat and
/// completion chunks, whole responses, Ollama lines) with <see cref="Utf8JsonReader"/> over the bytes,
/// without materialising strings. The fields do not clash, so one reader serves Chat Completions,
/// Completions, Ollama and the unrecognised APIs passed through. Malformed JSON yields no facts.
/// </summary>
internal sealed class CompatibleChunkReader : ChunkReader
{
    public static readonly CompatibleChunkReader Instance = new();

    public override void ReadEvent(ReadOnlySpan<byte> eventName, ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text) =>
        JsonChunks.Read(json, ref facts, text, ReadChunk);

    /// <summary>True for the usage-only chunk that <c>stream_options.include_usage</c> adds.</summary>
    public static bool IsUsageOnly(ReadOnlySpan<byte> json)
    {
        var facts = default(ChunkFacts);
        Instance.ReadEvent(default, json, ref facts, null);
        return facts.UsageOnly;
    }

    private static void ReadChunk(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return;
        }

        var noChoices = false;
        var usage = false;
        while (JsonChunks.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("choices"u8))
            {
                reader.Read();
                noChoices = ReadChoices(ref reader, ref facts, text);
            }
            else if (reader.ValueTextEquals("usage"u8))
            {
                reader.Read();
                usage = reader.TokenType == JsonTokenType.StartObject;
                JsonChunks.ReadUsage(ref reader, "completion_tokens"u8, "prompt_tokens"u8, ref facts.CompletionTokens, ref facts.PromptTokens);
            }
            else if (reader.ValueTextEquals("message"u8))
            {
                reader.Read();
                ReadMessage(ref reader, ref facts, text); // Ollama /api/chat
            }
            else if (reader.ValueTextEquals("response"u8))
            {
                reader.Read();
                JsonChunks.ReadText(ref reader, ref facts, text); // Ollama /api/generate
            }
            else if (reader.ValueTextEquals("eval_count"u8))
            {
                reader.Read();
                facts.CompletionTokens = JsonChunks.ReadCount(ref reader) ?? facts.CompletionTokens;
            }
            else if (reader.ValueTextEquals("prompt_eval_count"u8))
            {
                reader.Read();
                facts.PromptTokens = JsonChunks.ReadCount(ref reader) ?? facts.PromptTokens;
            }
            else if (reader.ValueTextEquals("model"u8))
            {
                reader.Read();
                JsonChunks.ReadModel(ref reader, ref facts);
            }
            else if (reader.ValueTextEquals("done"u8))
            {
                reader.Read();
                facts.End |= reader.TokenType == JsonTokenType.True; // Ollama's last line
            }
            else if (reader.ValueTextEquals("error"u8))
            {
                reader.Read();
                facts.Error |= reader.TokenType is JsonTokenType.String or JsonTokenType.StartObject;
                reader.Skip();
            }
            else
            {
                JsonChunks.SkipValue(ref reader);
            }
        }

        facts.UsageOnly = noChoices && usage;
    }

    /// <summary>Reads <c>choices</c>; true when it is an empty array.</summary>
    private static bool ReadChoices(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
    {
        if (!JsonChunks.IsArray(ref reader))
        {
            return false;
        }

        var empty = true;
        while (JsonChunks.NextObject(ref reader))
        {
            empty = false;
            while (JsonChunks.NextProperty(ref reader))
            {
                if (reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
                {
                    reader.Read();
                    ReadMessage(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("text"u8))
                {
                    reader.Read();
                    JsonChunks.ReadText(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("finish_reason"u8))
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

        return empty;
    }

    private static void ReadMessage(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
    {
        if (!JsonChunks.IsObject(ref reader))
        {
            return;
        }

        while (JsonChunks.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("reasoning_content"u8)
                || reader.ValueTextEquals("reasoning"u8) || reader.ValueTextEquals("thinking"u8))
            {
                reader.Read();
                JsonChunks.ReadText(ref reader, ref facts, text);
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                JsonChunks.ReadFieldOfEach(ref reader, ref facts, text, "function"u8, ReadFunction);
            }
            else
            {
                JsonChunks.SkipValue(ref reader);
            }
        }
    }

    /// <summary><c>tool_calls[].function</c>: its name and arguments are generated output.</summary>
    private static void ReadFunction(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
    {
        if (!JsonChunks.IsObject(ref reader))
        {
            return;
        }

        while (JsonChunks.NextProperty(ref reader))
        {
            if (reader.ValueTextEquals("arguments"u8) || reader.ValueTextEquals("name"u8))
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
}
