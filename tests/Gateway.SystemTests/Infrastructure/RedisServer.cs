using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A real <c>redis-server</c> (Debian package) on 127.0.0.1 and a port the OS picked, unpersisted, in a
/// temporary folder; started, killed, frozen and started again on the same port by the tests.
/// </summary>
internal sealed class RedisServer : IAsyncDisposable
{
    private readonly string _folder;
    private Process? _process;

    private RedisServer(int port, string folder)
    {
        Port = port;
        _folder = folder;
    }

    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string.</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    public static async Task<RedisServer> StartAsync()
    {
        var server = new RedisServer(FreePort(), Directory.CreateTempSubdirectory("gateway-redis-").FullName);
        await server.RestartAsync();
        return server;
    }

    /// <summary>A loopback port nothing listens on (for "Redis unreachable").</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts redis-server on <see cref="Port"/> and returns once it answers PING.</summary>
    public async Task RestartAsync()
    {
        var start = new ProcessStartInfo("redis-server")
        {
            WorkingDirectory = _folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", "--dir", _folder })
        {
            start.ArgumentList.Add(argument);
        }

        // redis-server logs "Ready to accept connections" once it listens: the signal waited on.
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data?.Contains("Ready to accept connections", StringComparison.Ordinal) == true)
            {
                ready.TrySetResult();
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => ready.TrySetException(
            new InvalidOperationException("redis-server exited before it was ready (is the redis-server package installed?)"));
        if (!process.Start())
        {
            throw new InvalidOperationException("redis-server did not start");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;

        using var deadline = new CancellationTokenSource(Wait.Timeout);
        await ready.Task.WaitAsync(deadline.Token);
        if (!await PingAsync(deadline.Token))
        {
            throw new InvalidOperationException("redis-server said it was ready but did not answer PING");
        }
    }

    /// <summary>Kills the server outright (SIGKILL): what a crashed or unreachable Redis looks like.</summary>
    public async Task KillAsync()
    {
        if (_process is { } process)
        {
            process.Kill();
            await process.WaitForExitAsync();
            process.Dispose();
            _process = null;
        }
    }

    /// <summary>Freezes the server (SIGSTOP): connections stay open and nothing is answered, what a Redis
    /// stuck in a long command or a paused VM looks like. Returns once the process is stopped.</summary>
    public Task PauseAsync() =>
        ProcessSignals.PauseAsync(_process?.Id ?? throw new InvalidOperationException("redis-server is not running"), Wait.Timeout);

    /// <summary>Lets a paused server go on (SIGCONT); it then answers everything sent to it meanwhile.</summary>
    public void Resume() => ProcessSignals.Resume(_process?.Id ?? throw new InvalidOperationException("redis-server is not running"));

    private async Task<bool> PingAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port, cancellationToken);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken);
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer, cancellationToken);
            return Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (SocketException)
        {
            return false;
        }
        catch (IOException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
