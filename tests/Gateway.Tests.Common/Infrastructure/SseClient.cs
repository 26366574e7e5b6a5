using System.Text;

namespace Gateway.Tests.Infrastructure;

/// <summary>One SSE event as a client parses it: its id line and its data lines.</summary>
internal sealed record SseEvent(string? Id, IReadOnlyList<string> Data)
{
    /// <summary>A Chat Completions chunk that carries text.</summary>
    public bool HasContent => Data.Any(d => d.Contains("\"content\":\"", StringComparison.Ordinal) && !d.Contains("\"content\":\"\"", StringComparison.Ordinal));

    public bool IsDone => Data.Any(d => d == "[DONE]");

    public bool IsError(string code) => Data.Any(d => d.Contains($"\"code\":\"{code}\"", StringComparison.Ordinal));

    /// <summary>The number after the id's dot: the event's place in its stream.</summary>
    public long Sequence => long.Parse(Id![(Id!.IndexOf('.') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Reads a response's SSE events one at a time, as EventSource does (fields <c>id</c> and <c>data</c>).</summary>
internal sealed class SseClient(HttpResponseMessage response, HttpClient? owner = null) : IDisposable
{
    private StreamReader? _reader;

    public HttpResponseMessage Response { get; } = response;

    /// <summary>Sends <paramref name="request"/>; with <paramref name="owned"/>, disposing the reader disposes the client too.</summary>
    public static async Task<SseClient> OpenAsync(HttpClient client, HttpRequestMessage request, bool owned = false) =>
        new(await StreamReading.SendAsync(client, request), owned ? client : null);

    /// <summary>The next event; null at the end of the body.</summary>
    public async Task<SseEvent?> NextAsync()
    {
        _reader ??= new StreamReader(await Response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        string? id = null;
        var data = new List<string>();
        var any = false;
        while (await _reader.ReadLineAsync() is { } line)
        {
            if (line.Length == 0)
            {
                if (any)
                {
                    return new SseEvent(id, data);
                }

                continue;
            }

            any = true;
            if (line.StartsWith("id:", StringComparison.Ordinal))
            {
                id = line[3..].TrimStart(' ');
            }
            else if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Add(line[5..].TrimStart(' '));
            }
        }

        return any ? new SseEvent(id, data) : null;
    }

    /// <summary>Reads events until <paramref name="until"/> holds for one (included), or the end.</summary>
    public async Task<List<SseEvent>> ReadAsync(Func<List<SseEvent>, bool> until)
    {
        var events = new List<SseEvent>();
        while (await NextAsync() is { } e)
        {
            events.Add(e);
            if (until(events))
            {
                break;
            }
        }

        return events;
    }

    public Task<List<SseEvent>> ReadToEndAsync() => ReadAsync(_ => false);

    public void Dispose()
    {
        _reader?.Dispose();
        Response.Dispose();
        owner?.Dispose();
    }
}
