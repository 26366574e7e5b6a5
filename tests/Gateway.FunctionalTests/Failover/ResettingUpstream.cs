using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Failover;

/// <summary>A destination that accepts, reads a whole request (headers and Content-Length body) and resets the
/// connection without a byte of response: a model server that died with the request in hand.</summary>
internal sealed class ResettingUpstream : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _requests;
    private bool _incomplete;

    public ResettingUpstream()
    {
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri BaseAddress { get; }

    public int Requests => Volatile.Read(ref _requests);

    public bool BodiesComplete => Requests > 0 && !_incomplete;

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                using var socket = await _listener.AcceptSocketAsync(_stop.Token);
                var received = new List<byte>();
                var buffer = new byte[8192];
                int headerEnd = -1, length = 0;
                while (headerEnd < 0 || received.Count < headerEnd + length)
                {
                    var n = await socket.ReceiveAsync(buffer, _stop.Token);
                    if (n == 0)
                    {
                        break;
                    }

                    received.AddRange(buffer.AsSpan(0, n).ToArray());
                    if (headerEnd < 0 && Encoding.ASCII.GetString([.. received]).IndexOf("\r\n\r\n", StringComparison.Ordinal) is var end and >= 0)
                    {
                        headerEnd = end + 4;
                        var headers = Encoding.ASCII.GetString([.. received], 0, end);
                        var line = headers.Split("\r\n").FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                        length = line is null ? 0 : int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
                    }
                }

                _incomplete |= headerEnd < 0 || received.Count < headerEnd + length;
                Interlocked.Increment(ref _requests);
                socket.LingerState = new LingerOption(true, 0); // close with RST
                socket.Close();
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
