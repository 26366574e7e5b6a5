namespace Gateway.Protocols;

/// <summary>How a response body is framed, read from its Content-Type.</summary>
internal enum Framing
{
    /// <summary>Not a format the gateway can add an event to; ending it early means aborting it.</summary>
    Unknown,
    /// <summary><c>text/event-stream</c>: events end with a blank line.</summary>
    Sse,
    /// <summary>Newline-delimited JSON (Ollama): a line is an event.</summary>
    Ndjson,
    /// <summary>One JSON document (<c>"stream": false</c>).</summary>
    Json,
}

internal static class Framings
{
    public static Framing FromContentType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return Framing.Unknown;
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
            return Framing.Sse;
        }

        if (mediaType.Equals("application/x-ndjson", StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/ndjson", StringComparison.OrdinalIgnoreCase)
            || mediaType.Equals("application/jsonl", StringComparison.OrdinalIgnoreCase))
        {
            return Framing.Ndjson;
        }

        return mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) ? Framing.Json : Framing.Unknown;
    }
}
