using System.Text;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>
/// A streamed answer a test reads part of, on a client of its own: disposing it drops the connection
/// at once, like a closed browser tab.
/// </summary>
internal sealed class LiveStream : IDisposable
{
    private readonly HttpClient _client;
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;
    private readonly LlamaApi _api;
    private readonly List<string> _lines = [];

    private LiveStream(HttpClient client, HttpResponseMessage response, StreamReader reader, LlamaApi api)
    {
        _client = client;
        _response = response;
        _reader = reader;
        _api = api;
    }

    /// <summary>Events that carried a generated token, read so far.</summary>
    public int ContentEvents { get; private set; }

    public static async Task<LiveStream> OpenAsync(Uri gateway, LlamaApi api, HttpRequestMessage request)
    {
        var client = StreamReading.NewClient(gateway);
        var response = await StreamReading.SendAsync(client, request);
        Assert.Equal(200, (int)response.StatusCode);
        var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        return new LiveStream(client, response, reader, api);
    }

    /// <summary>Reads until <paramref name="count"/> tokens arrived in all: what a person had read when they cut the answer.</summary>
    public async Task ReadContentAsync(int count)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (ContentEvents < count)
        {
            var line = await _reader.ReadLineAsync(deadline.Token)
                ?? throw new InvalidOperationException($"the stream ended after {ContentEvents} tokens, before {count}:\n{string.Join('\n', _lines)}");
            Add(line);
        }
    }

    /// <summary>Reads the rest; the transcript holds every line, those read before too.</summary>
    public async Task<StreamTranscript> ReadToEndAsync()
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        Exception? error = null;
        try
        {
            while (await _reader.ReadLineAsync(deadline.Token) is { } line)
            {
                Add(line);
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            error = ex;
        }

        return new StreamTranscript((int)_response.StatusCode, _response.Content.Headers.ContentType?.MediaType, [.. _lines], error);
    }

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
        _client.Dispose();
    }

    private void Add(string line)
    {
        _lines.Add(line);
        if (_api.IsContentLine(line))
        {
            ContentEvents++;
        }
    }
}
