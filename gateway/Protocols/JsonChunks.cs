using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>Small readings every API's chunk reader shares.</summary>
internal static class JsonChunks
{
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
