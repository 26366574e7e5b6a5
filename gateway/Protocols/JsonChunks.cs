using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>Reads one JSON value the reader is on (its first token read).</summary>
internal delegate void JsonValueReader(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text);

/// <summary>Reads one JSON value the reader is on, noting what the adapter needs after it in <paramref name="state"/>.</summary>
internal delegate void JsonValueReader<TState>(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, ref TState state);

/// <summary>
/// Small readings every API's chunk reader shares. Walks take the reader by ref and their callbacks as
/// static lambdas or static method groups, which the compiler caches: nothing is allocated per chunk.
/// </summary>
internal static class JsonChunks
{
    private static readonly JsonReaderOptions Options = new() { MaxDepth = 64 };

    /// <summary>
    /// Reads one event or body with <paramref name="read"/>. Malformed JSON, or a string that is not valid
    /// UTF-8, counts for nothing: the facts are reset (the model still wanted stays wanted) and none of
    /// the text is kept. The bytes still pass unchanged.
    /// </summary>
    public static void Read(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text, JsonValueReader read) =>
        Read(json, ref facts, text, ref read, static (ref reader, ref facts, text, ref read) => read(ref reader, ref facts, text));

    /// <summary>As <see cref="Read(ReadOnlySpan{byte}, ref ChunkFacts, ContentText?, JsonValueReader)"/>, for a
    /// reader that leaves <paramref name="state"/> for its adapter; false when the JSON was malformed.</summary>
    public static bool Read<TState>(ReadOnlySpan<byte> json, ref ChunkFacts facts, ContentText? text, ref TState state, JsonValueReader<TState> read)
    {
        var mark = text?.Length ?? 0;
        try
        {
            var reader = new Utf8JsonReader(json, Options);
            if (reader.Read())
            {
                read(ref reader, ref facts, text, ref state);
            }

            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            text?.Truncate(mark);
            facts = default(ChunkFacts) with { WantModel = facts.WantModel };
            return false;
        }
    }

    /// <summary>True when the reader is on an object, to walk with <see cref="NextProperty"/>; any other value is skipped.</summary>
    public static bool IsObject(ref Utf8JsonReader reader) => IsOrSkip(ref reader, JsonTokenType.StartObject);

    /// <summary>True when the reader is on an array, to walk with <see cref="NextObject"/>; any other value is skipped.</summary>
    public static bool IsArray(ref Utf8JsonReader reader) => IsOrSkip(ref reader, JsonTokenType.StartArray);

    /// <summary>Moves to the next property name of the object being walked; false at its end.</summary>
    public static bool NextProperty(ref Utf8JsonReader reader) => reader.Read() && reader.TokenType == JsonTokenType.PropertyName;

    /// <summary>Moves to the next element of the array being walked; false at its end or at an element that is not an object.</summary>
    public static bool NextObject(ref Utf8JsonReader reader) => reader.Read() && reader.TokenType == JsonTokenType.StartObject;

    /// <summary>Moves past the value of the property the reader is on.</summary>
    public static void SkipValue(ref Utf8JsonReader reader)
    {
        reader.Read();
        reader.Skip();
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

        while (NextObject(ref reader))
        {
            readObject(ref reader, ref facts, text);
        }
    }

    /// <summary>An object whose <paramref name="field"/> is read with <paramref name="read"/>; its other properties are skipped.</summary>
    public static void ReadField(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, ReadOnlySpan<byte> field, JsonValueReader read)
    {
        if (!IsObject(ref reader))
        {
            return;
        }

        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals(field))
            {
                reader.Read();
                read(ref reader, ref facts, text);
            }
            else
            {
                SkipValue(ref reader);
            }
        }
    }

    /// <summary>An array of objects, each read with <see cref="ReadField"/>.</summary>
    public static void ReadFieldOfEach(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text, ReadOnlySpan<byte> field, JsonValueReader read)
    {
        if (!IsArray(ref reader))
        {
            return;
        }

        while (NextObject(ref reader))
        {
            ReadField(ref reader, ref facts, text, field, read);
        }
    }

    /// <summary>An array of objects (content parts, blocks) whose <c>text</c> strings are output.</summary>
    public static void ReadTextParts(ref Utf8JsonReader reader, ref ChunkFacts facts, ContentText? text) =>
        ReadFieldOfEach(ref reader, ref facts, text, "text"u8, ReadText);

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

    /// <summary>
    /// A usage object: the counts named <paramref name="completionField"/> and <paramref name="promptField"/>
    /// (an empty name is not read) replace <paramref name="completion"/> and <paramref name="prompt"/>; others are skipped.
    /// </summary>
    public static void ReadUsage(
        ref Utf8JsonReader reader, ReadOnlySpan<byte> completionField, ReadOnlySpan<byte> promptField, ref long? completion, ref long? prompt)
    {
        if (!IsObject(ref reader))
        {
            return;
        }

        while (NextProperty(ref reader))
        {
            if (reader.ValueTextEquals(completionField))
            {
                reader.Read();
                completion = ReadCount(ref reader) ?? completion;
            }
            else if (!promptField.IsEmpty && reader.ValueTextEquals(promptField))
            {
                reader.Read();
                prompt = ReadCount(ref reader) ?? prompt;
            }
            else
            {
                SkipValue(ref reader);
            }
        }
    }

    /// <summary>The model a response names, while the counter still wants one: a string of at most 256 bytes.</summary>
    public static void ReadModel(ref Utf8JsonReader reader, ref ChunkFacts facts)
    {
        if (facts.WantModel && reader.TokenType == JsonTokenType.String && reader.ValueSpan.Length is > 0 and <= 256)
        {
            facts.Model = reader.GetString();
            facts.WantModel = false;
        }
    }

    /// <summary>An <c>error</c> property that is not null marks the chunk an error.</summary>
    public static void ReadError(ref Utf8JsonReader reader, ref ChunkFacts facts)
    {
        facts.Error |= reader.TokenType != JsonTokenType.Null;
        reader.Skip();
    }

    private static bool IsOrSkip(ref Utf8JsonReader reader, JsonTokenType start)
    {
        if (reader.TokenType == start)
        {
            return true;
        }

        reader.Skip();
        return false;
    }
}
