using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests.Resume;

/// <summary>
/// A loopback TCP relay in front of the gateway: what a browser's network path is, and what the test breaks.
/// <see cref="CutAll"/> resets every connection through it (a Wi-Fi hand-over, a tunnel), both towards the
/// browser and towards the gateway; new connections are relayed again at once.
/// </summary>
internal sealed class TcpRelay : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly IPEndPoint _target;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(Socket Client, Socket Upstream)> _pairs = [];
    private readonly Task _accepting;
    private int _accepted;

    public TcpRelay(Uri target)
    {
        _target = new IPEndPoint(IPAddress.Loopback, target.Port);
        _listener.Start();
        BaseAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri BaseAddress { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Accepted => Volatile.Read(ref _accepted);

    /// <summary>Resets every open connection: the browser sees a network error, the gateway a client that went away.</summary>
    public int CutAll()
    {
        lock (_pairs)
        {
            foreach (var (client, upstream) in _pairs)
            {
                Reset(client);
                Reset(upstream);
            }

            var cut = _pairs.Count;
            _pairs.Clear();
            return cut;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        CutAll();
        try
        {
            await _accepting;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // stopped
        }
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptSocketAsync(_stop.Token);
            Interlocked.Increment(ref _accepted);
            var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            client.NoDelay = true;
            try
            {
                await upstream.ConnectAsync(_target, _stop.Token);
            }
            catch (SocketException)
            {
                Reset(client);
                upstream.Dispose();
                continue;
            }

            lock (_pairs)
            {
                _pairs.Add((client, upstream));
            }

            _ = PumpAsync(client, upstream);
            _ = PumpAsync(upstream, client);
        }
    }

    private static async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            int read;
            while ((read = await from.ReceiveAsync(buffer, SocketFlags.None)) > 0)
            {
                await to.SendAsync(buffer.AsMemory(0, read), SocketFlags.None);
            }

            to.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // cut, or the other side closed
        }
    }

    private static void Reset(Socket socket)
    {
        try
        {
            socket.LingerState = new LingerOption(true, 0); // close with RST, as a broken path looks
            socket.Close();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // already closed
        }
    }
}
