using System.Buffers;
using System.Text.Json;

namespace Gateway.Sessions;

/// <summary>
/// Finds body session keys (<c>body:metadata.session_id</c>) before the request may go upstream: the
/// claim must be made first. Buffers at most <c>Gateway:Sessions:MaxBodyKeyBytes</c> of the body in
/// the request pipe (consuming nothing: the forwarder sends every byte on unchanged); a key that lies
/// past that is not found, and the request is treated as having no body key.
/// </summary>
internal static class BodyKeyPeek
{
    /// <summary>The default of <c>Gateway:Sessions:MaxBodyKeyBytes</c>.</summary>
    public const int DefaultMaxBytes = 1024 * 1024;

    /// <summary>
    /// Looks at up to <paramref name="maxBytes"/> of a JSON body without consuming it: the bytes stay
    /// in the request pipe, and the forwarder sends them on unchanged. A body that is not JSON, is
    /// malformed, or is cut by the cap yields what could be read before that point.
    /// </summary>
    public static async ValueTask<IReadOnlyList<string?>> PeekAsync(HttpRequest request, int maxBytes, IReadOnlyList<string[]> keyPaths, CancellationToken cancellationToken)
    {
        if (keyPaths.Count == 0 || !HttpMethods.IsPost(request.Method) || !IsJson(request.ContentType) || request.ContentLength == 0)
        {
            return [];
        }

        var reader = request.BodyReader;
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            if (buffer.Length >= maxBytes || result.IsCompleted)
            {
                var complete = result.IsCompleted && buffer.Length <= maxBytes;
                var keys = Parse(buffer.Slice(0, Math.Min(buffer.Length, maxBytes)), complete, keyPaths);
                reader.AdvanceTo(buffer.Start); // consume nothing
                return keys;
            }

            reader.AdvanceTo(buffer.Start, buffer.End); // looked at everything, need more
        }
    }

    /// <summary>
    /// Walks the JSON objects (arrays are skipped whole: <c>messages</c> can be long and no key is
    /// inside one) for the string values at <paramref name="keyPaths"/>, in their order (null where
    /// absent). A body that is malformed names no session: it must not supersede a live stream.
    /// </summary>
    public static string?[] Parse(ReadOnlySequence<byte> json, bool isFinalBlock, IReadOnlyList<string[]> keyPaths)
    {
        var keys = new string?[keyPaths.Count];
        var path = new List<string>(4);
        string? property = null;
        var reader = new Utf8JsonReader(json, isFinalBlock, new JsonReaderState(new JsonReaderOptions { MaxDepth = 64 }));
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return Malformed();
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
                            return keys;
                        }

                        break;
                    case JsonTokenType.EndObject:
                        if (path.Count == 0)
                        {
                            // The end of the body's object; a whole body must end here too.
                            return isFinalBlock && reader.Read() ? Malformed() : keys;
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
        return isFinalBlock ? Malformed() : keys;

        string?[] Malformed() => new string?[keys.Length];

        void OnValue(ref Utf8JsonReader reader)
        {
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

    private static bool IsJson(string? contentType) =>
        contentType is not null && contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);
}
