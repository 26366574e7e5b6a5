using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Gateway.Tests.Infrastructure;

/// <summary>What a client saw of one streamed response, read to its end.</summary>
internal sealed record StreamTranscript(int StatusCode, string? ContentType, IReadOnlyList<string> Lines, Exception? ReadError)
{
    /// <summary>SSE <c>data:</c> payloads in order.</summary>
    public IReadOnlyList<string> DataEvents => [.. Lines.Where(l => l.StartsWith("data:", StringComparison.Ordinal)).Select(l => l[5..].TrimStart())];

    public bool EndedCleanly => ReadError is null;
}

internal static class StreamReading
{
    /// <summary>A client whose disposal drops its connections at once, like a closed browser tab:
    /// by default HttpClient would first read up to 1 MB of an unfinished response to reuse the connection.</summary>
    public static HttpClient NewClient(Uri baseAddress) => new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(1), MaxResponseDrainSize = 0 })
    {
        BaseAddress = baseAddress,
        Timeout = System.Threading.Timeout.InfiniteTimeSpan,
    };

    public static HttpRequestMessage ChatRequest(string path, string prompt, string? sessionId, bool stream = true, int? maxTokens = null,
        string model = "mock-1", string? authorization = null, IDictionary<string, string>? headers = null)
    {
        var body = new Dictionary<string, object?>
        {
            ["model"] = model,
            ["stream"] = stream,
        };
        if (path.StartsWith("/api/generate", StringComparison.Ordinal) || path.StartsWith("/v1/completions", StringComparison.Ordinal))
        {
            body["prompt"] = prompt;
        }
        else
        {
            body["messages"] = new[] { new { role = "user", content = prompt } };
        }

        if (maxTokens is { } max)
        {
            if (path.StartsWith("/api/", StringComparison.Ordinal))
            {
                body["options"] = new { num_predict = max };
            }
            else
            {
                body["max_tokens"] = max;
            }
        }

        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json"),
        };
        if (sessionId is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Session-Id", sessionId);
        }

        if (authorization is not null)
        {
            request.Headers.Authorization = AuthenticationHeaderValue.Parse(authorization);
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return request;
    }

    /// <summary>Sends and returns once the response headers arrived.</summary>
    public static Task<HttpResponseMessage> SendAsync(HttpClient client, HttpRequestMessage request, CancellationToken cancellationToken = default) =>
        client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);

    /// <summary>Reads the body line by line to its end; a reset or truncated chunked body, or a response the caller
    /// disposed meanwhile, shows as <see cref="StreamTranscript.ReadError"/>.</summary>
    public static async Task<StreamTranscript> ReadToEndAsync(HttpResponseMessage response, CancellationToken cancellationToken = default)
    {
        var lines = new List<string>();
        Exception? error = null;
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            using var reader = new StreamReader(body, Encoding.UTF8);
            while (await reader.ReadLineAsync(cancellationToken) is { } line)
            {
                lines.Add(line);
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or ObjectDisposedException)
        {
            // ObjectDisposedException: the test disposed the response (its client went away) while this read ran.
            error = ex;
        }

        return new StreamTranscript((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, lines, error);
    }

    public static async Task<StreamTranscript> SendAndReadAsync(HttpClient client, HttpRequestMessage request, CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(client, request, cancellationToken);
        return await ReadToEndAsync(response, cancellationToken);
    }
}
