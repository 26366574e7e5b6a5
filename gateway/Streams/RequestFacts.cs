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
    public static async ValueTask<RequestFacts> PeekAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
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
                var facts = Parse(buffer.Slice(0, Math.Min(buffer.Length, maxBytes)), complete);
                reader.AdvanceTo(buffer.Start); // consume nothing
                return facts;
            }

            reader.AdvanceTo(buffer.Start, buffer.End); // looked at everything, need more
        }
    }

    public static RequestFacts Parse(ReadOnlySequence<byte> json, bool isFinalBlock)
    {
        string? model = null;
        bool? stream = null;
        long? maxTokens = null;
        long? maxCompletionTokens = null;
        var reader = new Utf8JsonReader(json, isFinalBlock, new JsonReaderState(new JsonReaderOptions { MaxDepth = 64 }));
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return None;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("model"u8))
                {
                    if (!reader.Read())
                    {
                        break;
                    }

                    var length = reader.HasValueSequence ? reader.ValueSequence.Length : reader.ValueSpan.Length;
                    model = reader.TokenType == JsonTokenType.String && length <= MaxModelBytes ? reader.GetString() : null;
                }
                else if (reader.ValueTextEquals("stream"u8))
                {
                    if (!reader.Read())
                    {
                        break;
                    }

                    stream = reader.TokenType switch
                    {
                        JsonTokenType.True => true,
                        JsonTokenType.False => false,
                        _ => stream,
                    };
                }
                else if (reader.ValueTextEquals("max_tokens"u8))
                {
                    if (!reader.Read())
                    {
                        break;
                    }

                    maxTokens = ReadCap(ref reader) ?? maxTokens;
                }
                else if (reader.ValueTextEquals("max_completion_tokens"u8))
                {
                    if (!reader.Read())
                    {
                        break;
                    }

                    maxCompletionTokens = ReadCap(ref reader) ?? maxCompletionTokens;
                }
                else if (reader.ValueTextEquals("options"u8))
                {
                    if (!reader.Read())
                    {
                        break;
                    }

                    if (reader.TokenType != JsonTokenType.StartObject)
                    {
                        if (!reader.TrySkip())
                        {
                            break;
                        }

                        continue;
                    }

                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isNumPredict = reader.ValueTextEquals("num_predict"u8);
                        if (!reader.Read())
                        {
                            break;
                        }

                        if (isNumPredict)
                        {
                            maxTokens = ReadCap(ref reader) ?? maxTokens;
                        }
                        else if (!reader.TrySkip())
                        {
                            break;
                        }
                    }
                }
                else if (!reader.Read() || !reader.TrySkip())
                {
                    break; // the peek ended inside this value
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Malformed JSON, or a string that is not valid UTF-8: keep what was read before the
            // fault; the body is forwarded as sent.
        }

        return new RequestFacts(model, stream, maxCompletionTokens ?? maxTokens);
    }

    /// <summary>A positive cap; 0, negatives (Ollama's -1 means unlimited) and non-numbers mean no cap.</summary>
    private static long? ReadCap(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value > 0 ? value : null;

    private static bool IsJson(string? contentType) =>
        contentType is not null && contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase);
}
