using System.Buffers;
using System.Text.Json;

namespace Gateway.Streams;

/// <summary>What the request body says about the completion: read from a bounded peek, never from the whole body.</summary>
internal sealed record RequestFacts(string? Model, bool? Stream, long? MaxTokens)
{
    public static readonly RequestFacts None = new(null, null, null);

    /// <summary>Bytes of the body looked at, at most. The body is forwarded unchanged whatever its size.</summary>
    public const int DefaultPeekBytes = 64 * 1024;

    /// <summary>A longer <c>model</c> is not a model name; it is ignored rather than kept.</summary>
    public const int MaxModelBytes = 256;

    /// <summary>
    /// Looks at up to <paramref name="maxBytes"/> of a JSON body without consuming it: the bytes stay
    /// in the request pipe, and the forwarder sends them on unchanged. A body that is not JSON, is
    /// malformed, or is cut by the cap yields what could be read before that point.
    /// </summary>
    public static ValueTask<RequestFacts> PeekAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken) =>
        PeekAsync(request, maxBytes, [], cancellationToken);

    public static async ValueTask<RequestFacts> PeekAsync(HttpRequest request, int maxBytes, IReadOnlyList<string[]> keyPaths, CancellationToken cancellationToken)
    {
        if (!HttpMethods.IsPost(request.Method) || !IsJson(request.ContentType) || request.ContentLength == 0)
        {
            return None;
        }

        var reader = request.BodyReader;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (buffer.Length >= maxBytes || result.IsCompleted)
            {
                var complete = result.IsCompleted && buffer.Length <= maxBytes;
                var facts = Parse(buffer.Slice(0, Math.Min(buffer.Length, maxBytes)), complete, keyPaths);
                reader.AdvanceTo(buffer.Start); // consume nothing
                return facts;
            }

            reader.AdvanceTo(buffer.Start, buffer.End); // looked at everything, need more
        }
    }

    public static RequestFacts Parse(ReadOnlySequence<byte> json, bool isFinalBlock) => Parse(json, isFinalBlock, []);

    /// <summary>
    /// Walks the JSON objects (arrays are skipped whole: <c>messages</c> can be long and nothing
    /// wanted is inside one) for the completion facts and for the string values at
    /// <paramref name="keyPaths"/> (body key sources such as <c>metadata.session_id</c>).
    /// </summary>
    public static RequestFacts Parse(ReadOnlySequence<byte> json, bool isFinalBlock, IReadOnlyList<string[]> keyPaths)
    {
        string? model = null;
        bool? stream = null;
        long? maxTokens = null;
        long? maxCompletionTokens = null;
        var keys = keyPaths.Count == 0 ? [] : new string?[keyPaths.Count];
        var path = new List<string>(4);
        string? property = null;
        var reader = new Utf8JsonReader(json, isFinalBlock, new JsonReaderState(new JsonReaderOptions { MaxDepth = 64 }));
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return None;
            }

            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.PropertyName:
                        property = reader.GetString();
                        break;
                    case JsonTokenType.StartObject when path.Count < MaxPathDepth:
                        path.Add(property ?? "");
                        property = null;
                        break;
                    case JsonTokenType.StartObject:
                    case JsonTokenType.StartArray:
                        if (!reader.TrySkip())
                        {
                            return Result();
                        }

                        break;
                    case JsonTokenType.EndObject:
                        if (path.Count == 0)
                        {
                            // The end of the body's object; a whole body must end here too.
                            return isFinalBlock && reader.Read() ? Malformed() : Result();
                        }

                        path.RemoveAt(path.Count - 1);
                        break;
                    default:
                        OnValue(ref reader);
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Malformed JSON, or a string that is not valid UTF-8: the body is forwarded as sent.
            return Malformed();
        }

        // Out of bytes: the whole body ended inside its object (malformed), or the peek did.
        return isFinalBlock ? Malformed() : Result();

        // A body the upstream will reject names no session: it must not supersede a live stream.
        // The facts read before the fault are kept for accounting.
        RequestFacts Malformed() => Result() with { BodyKeys = keys.Length == 0 ? keys : new string?[keys.Length] };

        RequestFacts Result() => new(model, stream, maxCompletionTokens ?? maxTokens) { BodyKeys = keys };

        void OnValue(ref Utf8JsonReader reader)
        {
            if (path.Count == 0)
            {
                switch (property)
                {
                    case "model":
                        var length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
                        model = reader.TokenType == JsonTokenType.String && length <= MaxModelBytes ? reader.GetString() : null;
                        break;
                    case "stream":
                        stream = reader.TokenType switch
                        {
                            JsonTokenType.True => true,
                            JsonTokenType.False => false,
                            _ => stream,
                        };
                        break;
                    case "max_tokens":
                        maxTokens = ReadCap(ref reader) ?? maxTokens;
                        break;
                    case "max_completion_tokens":
                        maxCompletionTokens = ReadCap(ref reader) ?? maxCompletionTokens;
                        break;
                }
            }
            else if (path.Count == 1 && path[0] == "options" && property == "num_predict")
            {
                maxTokens = ReadCap(ref reader) ?? maxTokens;
            }

            for (var i = 0; i < keyPaths.Count; i++)
            {
                if (keys[i] is null && reader.TokenType == JsonTokenType.String && Matches(keyPaths[i], path, property))
                {
                    var length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
                    keys[i] = length <= MaxKeyValueBytes ? reader.GetString() : null;
                }
            }
        }
    }

    /// <summary>The string values found at the requested body key paths, in their order (null where absent).</summary>
    public IReadOnlyList<string?> BodyKeys { get; init; } = [];

    private const int MaxPathDepth = 8;
    private const int MaxKeyValueBytes = 4096;

    private static bool Matches(string[] keyPath, List<string> path, string? property)
    {
        if (keyPath.Length != path.Count + 1 || keyPath[^1] != property)
        {
            return false;
        }

        for (var i = 0; i < path.Count; i++)
        {
            if (keyPath[i] != path[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A positive cap; 0, negatives (Ollama's -1 means unlimited) and non-numbers mean no cap.</summary>
    private static long? ReadCap(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value > 0 ? value : null;

    private static bool IsJson(string? contentType) =>
        contentType is not null && contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);
}
