using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>Reads one JSON value the reader is on (its first token read).</summary>
internal delegate void JsonValueReader(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text);

/// <summary>Small readings every API's chunk reader shares.</summary>
internal static class JsonChunks
{
    private static readonly JsonReaderOptions Options = new() { MaxDepth = 64 };

    /// <summary>
    /// Reads one event or body with <paramref name="read"/>. Malformed JSON, or a string that is not valid
    /// UTF-8, counts for nothing: the facts are reset (the model still wanted stays wanted) and none of
    /// the text is kept. The bytes still pass unchanged.
    /// </summary>
    public static void Read(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text, JsonValueReader read)
    {
        var mark = text?.Length ?? 0;
        try
        {
            var reader = new Utf8JsonReader(json, Options);
            if (reader.Read())
            {
                read(ref reader, ref facts, text);
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            text?.Truncate(mark);
            facts = default(ChunkFacts) with { WantModel = facts.WantModel };
        }
    }

    /// <summary>A value that is one object, or an array of them (some servers answer a list), each read
    /// with <paramref name="readObject"/>.</summary>
    public static void ReadObjects(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, JsonValueReader readObject)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            readObject(ref reader, ref facts, text);
            return;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            readObject(ref reader, ref facts, text);
        }
    }

    /// <summary>A non-empty string is generated output: counted, and kept for the tokenizer.</summary>
    public static void ReadText(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text)
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

    public static long? ReadCount(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : null;

    /// <summary>The model a response names, while the counter still wants one: a string of at most 256 bytes.</summary>
    public static void ReadModel(ref Utf8JsonReader reader, ref ChunkFacts facts)
    {
        if (facts.WantModel && reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length is > 0 and <= 256)
        {
            facts.Model = reader.GetString();
            facts.WantModel = false;
        }
    }

    /// <summary>Moves past the value of the property the reader is on.</summary>
    public static void SkipValue(ref Utf8JsonReader reader)
    {
        reader.Read();
        reader.Skip();
    }

    /// <summary>An array of objects (content parts, blocks) whose <paramref name="field"/> strings are output.</summary>
    public static void ReadTextParts(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, ReadOnlySpan<byte> field)
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
                if (reader.ValueTextEquals(field))
                {
                    reader.Read();
                    ReadText(ref reader, ref facts, text);
                }
                else
                {
                    SkipValue(ref reader);
                }
            }
        }
    }
}
