using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Bench.Load;

/// <summary>The streaming APIs the bench can drive (the mock speaks each): path, body, and the events
/// around the tokens of a whole answer.</summary>
internal static class BenchApis
{
    public const string ChatCompletions = "chat_completions";
    public const string Messages = "messages";
    public const string Responses = "responses";

    public static readonly string[] All = [ChatCompletions, Messages, Responses];

    public static string Path(string api) => api switch
    {
        Messages => "/v1/messages",
        Responses => "/v1/responses",
        _ => "/v1/chat/completions",
    };

    public static string Body(string api, int tokens) => api switch
    {
        Responses => "{\"model\":\"mock-1\",\"stream\":true,\"max_output_tokens\":" + tokens + ",\"input\":\"bench\"}",
        _ => "{\"model\":\"mock-1\",\"stream\":true,\"max_tokens\":" + tokens + ",\"messages\":[{\"role\":\"user\",\"content\":\"bench\"}]}",
    };

    /// <summary>Events besides the tokens: Chat Completions' role chunk, finish chunk and <c>[DONE]</c>;
    /// Messages' start, block start, ping, block stop, delta and stop; Responses' created, in progress,
    /// item and part added, text done, part done, item done and completed.</summary>
    public static int Framing(string api) => api switch
    {
        Messages => 6,
        Responses => 8,
        _ => 3,
    };
}

/// <summary>What one streamed answer asks the mock for.</summary>
internal readonly record struct StreamRequest(string? SessionId, double TokensPerSecond, int Tokens, int TtftMs = 0, string Api = BenchApis.ChatCompletions)
{
    /// <summary>Server-sent events a complete answer of <see cref="Tokens"/> tokens has.</summary>
    public int ExpectedEvents => Tokens + BenchApis.Framing(Api);

    public static string TenantCredential(string sessionId) => "bench-" + sessionId;

    /// <summary>The request bytes; <c>Connection: close</c> so the end of the answer is the end of the connection.</summary>
    public byte[] ToBytes(IPEndPoint target)
    {
        var body = BenchApis.Body(Api, Tokens);
        var head = new StringBuilder()
            .Append("POST ").Append(BenchApis.Path(Api)).Append(" HTTP/1.1\r\n")
            .Append("Host: ").Append(target).Append("\r\n")
            .Append("Content-Type: application/json\r\n")
            .Append("Content-Length: ").Append(Encoding.UTF8.GetByteCount(body)).Append("\r\n")
            .Append("X-Mock-Tokens-Per-Second: ").Append(TokensPerSecond.ToString(CultureInfo.InvariantCulture)).Append("\r\n")
            .Append("X-Mock-Completion-Tokens: ").Append(Tokens).Append("\r\n")
            .Append("X-Mock-Ttft-Ms: ").Append(TtftMs).Append("\r\n");
        if (SessionId is not null)
        {
            // One tenant per conversation, as when many users stream at once: the gateway's
            // per-tenant limits then see real traffic rather than one tenant's flood.
            head.Append("X-Session-Id: ").Append(SessionId).Append("\r\n")
                .Append("Authorization: Bearer ").Append(TenantCredential(SessionId)).Append("\r\n");
        }

        head.Append("Connection: close\r\n\r\n").Append(body);
        return Encoding.UTF8.GetBytes(head.ToString());
    }
}

/// <summary>Counts events received across many clients, for the CPU-per-chunk window.</summary>
internal sealed class EventTally
{
    private long _events;

    public long Events => Interlocked.Read(ref _events);

    public void Add(int events) => Interlocked.Add(ref _events, events);
}

/// <summary>
/// One streaming client on a raw socket: lean enough that ten thousand of them leave the cores to the
/// proxy being measured. It counts server-sent events (a blank line ends each; chunked framing uses
/// CRLF, so it never forms one) and can vanish at any moment by closing its socket.
/// </summary>
internal sealed class StreamClient : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    private readonly EventTally? _tally;
    private readonly Lock _gate = new();
    private TaskCompletionSource<bool>? _waiter;
    private int _waitFor;
    private int _events;
    private bool _finished;

    public StreamClient(StreamRequest request, EventTally? tally = null)
    {
        Request = request;
        _tally = tally;
    }

    public StreamRequest Request { get; }

    public int Events => Volatile.Read(ref _events);

    /// <summary>The response's status code; 0 before its first bytes.</summary>
    public int Status { get; private set; }

    /// <summary>The server ended the response (closed the connection) before this client left.</summary>
    public bool EndedByServer { get; private set; }

    public bool Dropped { get; private set; }

    public Exception? Error { get; private set; }

    public Task Completion { get; private set; } = Task.CompletedTask;

    public async Task ConnectAsync(IPEndPoint target, CancellationToken cancellationToken) =>
        await _socket.ConnectAsync(target, cancellationToken);

    /// <summary>Sends the request and starts reading the answer in the background.</summary>
    public void Send(byte[] request) => Completion = RunAsync(request);

    /// <summary>Completes true once <paramref name="count"/> events arrived, false if the response ended first.</summary>
    public Task<bool> WaitForEventsAsync(int count)
    {
        lock (_gate)
        {
            if (_events >= count)
            {
                return Task.FromResult(true);
            }

            if (_finished)
            {
                return Task.FromResult(false);
            }

            _waitFor = count;
            _waiter = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            return _waiter.Task;
        }
    }

    /// <summary>The client goes away: its socket closes, as when a tab or process dies.</summary>
    public void Drop()
    {
        Dropped = true;
        _socket.Dispose();
    }

    /// <summary>Events that should have arrived and did not (for a stream nobody cancelled).</summary>
    public int Missing => Math.Max(0, Request.ExpectedEvents - Events);

    public void Dispose() => _socket.Dispose();

    private async Task RunAsync(byte[] request)
    {
        var buffer = new byte[4096];
        byte last = 0;
        try
        {
            await _socket.SendAsync(request, SocketFlags.None);
            while (true)
            {
                var read = await _socket.ReceiveAsync(buffer, SocketFlags.None);
                if (read == 0)
                {
                    EndedByServer = !Dropped;
                    break;
                }

                var bytes = buffer.AsSpan(0, read);
                if (Status == 0)
                {
                    Status = ParseStatus(bytes);
                }

                var found = CountEventEnds(bytes, last);
                last = bytes[^1];
                if (found > 0)
                {
                    _tally?.Add(found);
                    lock (_gate)
                    {
                        _events += found;
                        if (_waiter is not null && _events >= _waitFor)
                        {
                            _waiter.TrySetResult(true);
                            _waiter = null;
                        }
                    }
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or IOException)
        {
            if (!Dropped)
            {
                Error = ex;
            }
        }
        finally
        {
            lock (_gate)
            {
                _finished = true;
                _waiter?.TrySetResult(false);
                _waiter = null;
            }

            _socket.Dispose();
        }
    }

    private static int ParseStatus(ReadOnlySpan<byte> bytes) =>
        bytes.Length >= 12 && bytes.StartsWith("HTTP/1.1 "u8) && int.TryParse(bytes.Slice(9, 3), NumberStyles.None, CultureInfo.InvariantCulture, out var status)
            ? status
            : -1;

    private static int CountEventEnds(ReadOnlySpan<byte> bytes, byte previous)
    {
        var count = previous == (byte)'\n' && bytes[0] == (byte)'\n' ? 1 : 0;
        while (true)
        {
            var at = bytes.IndexOf("\n\n"u8);
            if (at < 0)
            {
                return count;
            }

            count++;
            bytes = bytes[(at + 2)..];
        }
    }

    /// <summary>Opens <paramref name="requests"/> against <paramref name="target"/>, at most
    /// <paramref name="concurrency"/> still waiting for their first event at once, and returns when
    /// every one has its first event (or has failed).</summary>
    public static async Task<List<StreamClient>> OpenManyAsync(
        IPEndPoint target, IEnumerable<StreamRequest> requests, int concurrency, EventTally? tally, CancellationToken cancellationToken)
    {
        var clients = new List<StreamClient>();
        using var slots = new SemaphoreSlim(concurrency);
        var opening = new List<Task>();
        foreach (var request in requests)
        {
            await slots.WaitAsync(cancellationToken);
            var client = new StreamClient(request, tally);
            clients.Add(client);
            opening.Add(OpenOneAsync(client));
        }

        await Task.WhenAll(opening);
        return clients;

        async Task OpenOneAsync(StreamClient client)
        {
            try
            {
                await client.ConnectAsync(target, cancellationToken);
                client.Send(client.Request.ToBytes(target));
                await client.WaitForEventsAsync(1);
            }
            catch (SocketException ex)
            {
                client.Error = ex;
            }
            finally
            {
                slots.Release();
            }
        }
    }

    public static long Now => Stopwatch.GetTimestamp();
}
