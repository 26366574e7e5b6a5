using System.Text;
using System.Text.Json;

namespace Gateway.Deploy.Tests.Infrastructure;

/// <summary>Streamed chat requests to a gateway process, and what their clients read.</summary>
internal static class Streaming
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    /// <summary>A client whose own pooled connections are its only ones, and which drops them at once on disposal.</summary>
    public static HttpClient Client(Uri baseAddress) =>
        new(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = baseAddress, Timeout = Timeout };

    /// <summary>Sends a streamed chat request and returns at its response headers, which must say 200 unless
    /// <paramref name="expectOk"/> is false.</summary>
    public static async Task<HttpResponseMessage> SendAsync(HttpClient http, string path, string? session, int maxTokens, int? completionTokens,
        string? authorization = null, string model = "mock-1", string prompt = "tell me a story", bool expectOk = true)
    {
        var body = JsonSerializer.Serialize(new
        {
            model,
            stream = true,
            max_tokens = maxTokens,
            messages = new[] { new { role = "user", content = prompt } },
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(path.TrimStart('/'), UriKind.Relative))
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        if (session is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Session-Id", session);
        }

        if (authorization is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", authorization);
        }

        if (completionTokens is { } tokens)
        {
            request.Headers.Add("X-Mock-Completion-Tokens", tokens.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (expectOk)
        {
            Assert.Equal(200, (int)response.StatusCode);
        }

        return response;
    }

    public sealed record Transcript(IReadOnlyList<string> Lines, Exception? ReadError)
    {
        public IReadOnlyList<string> Data => [.. Lines.Where(l => l.StartsWith("data:", StringComparison.Ordinal)).Select(l => l[5..].TrimStart())];
    }

    /// <summary>Reads to the end; a reset or a truncated chunked body shows as the read error.</summary>
    public static async Task<Transcript> ReadToEndAsync(HttpResponseMessage response)
    {
        var lines = new List<string>();
        try
        {
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
            while (await reader.ReadLineAsync() is { } line)
            {
                lines.Add(line);
            }

            return new Transcript(lines, null);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            return new Transcript(lines, e);
        }
    }
}
