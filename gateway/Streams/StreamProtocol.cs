namespace Gateway.Streams;

/// <summary>The framing of a streamed response, read from its Content-Type.</summary>
internal enum StreamProtocol
{
    /// <summary>Not a stream format the gateway can add an event to; ending it early means aborting it.</summary>
    Unknown,
    /// <summary><c>text/event-stream</c>: OpenAI-compatible servers.</summary>
    Sse,
    /// <summary>Newline-delimited JSON: Ollama.</summary>
    Ndjson,
}

internal static class StreamProtocols
{
    public static StreamProtocol FromContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return StreamProtocol.Unknown;
        }

        var mediaType = contentType.AsSpan();
        var semicolon = mediaType.IndexOf(';');
        if (semicolon >= 0)
        {
            mediaType = mediaType[..semicolon];
        }

        mediaType = mediaType.Trim();
        if (mediaType.Equals("text/event-stream", StringComparison.OrdinalIgnoreCase))
        {
            return StreamProtocol.Sse;
        }

        if (mediaType.Equals("application/x-ndjson", StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/ndjson", StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/jsonl", StringComparison.OrdinalIgnoreCase))
        {
            return StreamProtocol.Ndjson;
        }

        return StreamProtocol.Unknown;
    }
}
