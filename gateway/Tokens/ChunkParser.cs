using System.Text.Json;

namespace Gateway.Tokens;

/// <summary>What one JSON chunk says about completion tokens.</summary>
internal struct ChunkFacts
{
    /// <summary>The chunk carries completion text: content, reasoning, tool-call arguments or a completion's text.</summary>
    public bool HasContent;

    /// <summary>The upstream's own count: <c>usage.completion_tokens</c> or Ollama's <c>eval_count</c>.</summary>
    public long? CompletionTokens;

    /// <summary><c>usage.prompt_tokens</c> or Ollama's <c>prompt_eval_count</c>.</summary>
    public long? PromptTokens;

    /// <summary>The response names its model (OpenAI chunks and Ollama lines do).</summary>
    public bool HasModel;
}

/// <summary>
/// Reads one JSON value of any of the shapes LLM servers stream (OpenAI chat and completion chunks,
/// OpenAI whole responses, Ollama lines) with <see cref="Utf8JsonReader"/> over the bytes, without
/// materialising strings. Malformed JSON yields no facts: the bytes still pass unchanged.
/// </summary>
internal static class ChunkParser
{
    public static ChunkFacts Parse(ReadOnlySpan<byte> json, ContentText? text)
    {
        var facts = default(ChunkFacts);
        var mark = text?.Length ?? 0;
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 64 });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return default;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("choices"u8))
                {
                    reader.Read();
                    ReadChoices(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("usage"u8))
                {
                    reader.Read();
                    ReadUsage(ref reader, ref facts);
                }
                else if (reader.ValueTextEquals("message"u8))
                {
                    reader.Read();
                    ReadMessage(ref reader, ref facts, text); // Ollama /api/chat
                }
                else if (reader.ValueTextEquals("response"u8))
                {
                    reader.Read();
                    ReadText(ref reader, ref facts, text); // Ollama /api/generate
                }
                else if (reader.ValueTextEquals("eval_count"u8))
                {
                    reader.Read();
                    facts.CompletionTokens = ReadCount(ref reader) ?? facts.CompletionTokens;
                }
                else if (reader.ValueTextEquals("prompt_eval_count"u8))
                {
                    reader.Read();
                    facts.PromptTokens = ReadCount(ref reader) ?? facts.PromptTokens;
                }
                else if (reader.ValueTextEquals("model"u8))
                {
                    reader.Read();
                    facts.HasModel = reader.TokenType == JsonTokenType.String;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Malformed JSON, or a string that is not valid UTF-8: the chunk counts for nothing and
            // none of its text is kept.
            text?.Truncate(mark);
            return default;
        }

        return facts;
    }

    private static void ReadChoices(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
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
                if (reader.ValueTextEquals("delta"u8) || reader.ValueTextEquals("message"u8))
                {
                    reader.Read();
                    ReadMessage(ref reader, ref facts, text);
                }
                else if (reader.ValueTextEquals("text"u8))
                {
                    reader.Read();
                    ReadText(ref reader, ref facts, text);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
        }
    }

    private static void ReadMessage(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
    {
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("content"u8) || reader.ValueTextEquals("reasoning_content"u8)
                || reader.ValueTextEquals("reasoning"u8) || reader.ValueTextEquals("thinking"u8))
            {
                reader.Read();
                ReadText(ref reader, ref facts, text);
            }
            else if (reader.ValueTextEquals("tool_calls"u8))
            {
                reader.Read();
                ReadToolCalls(ref reader, ref facts, text);
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ReadToolCalls(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
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
                if (reader.ValueTextEquals("function"u8))
                {
                    reader.Read();
                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        reader.Skip();
                        continue;
                    }

                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isArguments = reader.ValueTextEquals("arguments"u8) || reader.ValueTextEquals("name"u8);
                        reader.Read();
                        if (isArguments)
                        {
                            ReadText(ref reader, ref facts, text);
                        }
                        else
                        {
                            reader.Skip();
                        }
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
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
            if (reader.ValueTextEquals("completion_tokens"u8))
            {
                reader.Read();
                facts.CompletionTokens = ReadCount(ref reader) ?? facts.CompletionTokens;
            }
            else if (reader.ValueTextEquals("prompt_tokens"u8))
            {
                reader.Read();
                facts.PromptTokens = ReadCount(ref reader) ?? facts.PromptTokens;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
    }

    private static void ReadText(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
    {
        if (reader.TokenType != JsonTokenType.String)
        {
            reader.Skip();
            return;
        }

        if (reader.ValueSpan.Length > 0)
        {
            facts.HasContent = true;
            text?.Append(ref reader);
        }
    }

    private static long? ReadCount(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : null;
}
