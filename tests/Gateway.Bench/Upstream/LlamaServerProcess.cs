using System.Diagnostics;
using System.Globalization;
using System.Net;

namespace Gateway.Bench.Upstream;

/// <summary>
/// A real llama.cpp <c>llama-server</c> for the real-server phase: binary and model from
/// <c>LLAMA_SERVER_BIN</c> and <c>LLAMA_MODEL</c> (what tests/real-server/build prints), on 127.0.0.1
/// and a port it picks itself (<c>--port 0</c>, read back from its "listening on" line). Its
/// <c>/metrics</c> are the server's own count of what it generated. Output goes to a log file.
/// </summary>
internal sealed class LlamaServerProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(120);

    private readonly Process _process;
    private readonly StreamWriter _output;
    private readonly HttpClient _client;

    private LlamaServerProcess(Process process, StreamWriter output, Uri baseAddress)
    {
        _process = process;
        _output = output;
        BaseAddress = baseAddress;
        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(10) };
    }

    public Uri BaseAddress { get; }

    public IPEndPoint EndPoint => new(IPAddress.Loopback, BaseAddress.Port);

    public const string BinaryVariable = "LLAMA_SERVER_BIN";
    public const string ModelVariable = "LLAMA_MODEL";

    /// <summary>Both variables are set (not checked: that the files exist; start-up says so).</summary>
    public static bool Configured =>
        !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(BinaryVariable)) && !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(ModelVariable));

    public const string HowToConfigure = "eval \"$(bash tests/real-server/build)\"; export LLAMA_SERVER_BIN LLAMA_MODEL";

    /// <summary>Starts llama-server (one thread, two slots) and returns once it listens and /health answers 200.</summary>
    public static async Task<LlamaServerProcess> StartAsync(string logDirectory)
    {
        var binary = Environment.GetEnvironmentVariable(BinaryVariable);
        var model = Environment.GetEnvironmentVariable(ModelVariable);
        if (string.IsNullOrEmpty(binary) || string.IsNullOrEmpty(model))
        {
            throw new InvalidOperationException($"{BinaryVariable} and {ModelVariable} are not set: {HowToConfigure}");
        }

        if (!File.Exists(binary) || !File.Exists(model))
        {
            throw new InvalidOperationException($"{BinaryVariable} ({binary}) or {ModelVariable} ({model}) does not exist: run tests/real-server/build again.");
        }

        Directory.CreateDirectory(logDirectory);
        var log = Path.Combine(logDirectory, "llama-server.log");
        var start = new ProcessStartInfo(binary) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[]
                 {
                     "-m", model, "--host", "127.0.0.1", "--port", "0", "-t", "1", "-tb", "1", "-np", "2", "-c", "4096",
                     "--no-webui", "--metrics", "--log-colors", "off",
                 })
        {
            start.ArgumentList.Add(argument);
        }

        var output = new StreamWriter(log, append: true) { AutoFlush = true };
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.WriteLine(e.Data);
            }

            var at = e.Data.IndexOf("listening on http://", StringComparison.Ordinal);
            if (at >= 0)
            {
                listening.TrySetResult(new Uri(e.Data[(at + "listening on ".Length)..].Trim() + "/"));
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"llama-server exited before listening; see {log}"));
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {binary}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        Uri address;
        try
        {
            address = await listening.Task.WaitAsync(StartTimeout);
        }
        catch
        {
            Kill(process);
            await output.DisposeAsync();
            throw;
        }

        var server = new LlamaServerProcess(process, output, address);
        try
        {
            using var health = await server._client.GetAsync(new Uri("health", UriKind.Relative));
            if (!health.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"llama-server said it was listening, but /health answered {(int)health.StatusCode}; see {log}");
            }
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>One sample of the server's <c>/metrics</c> (names like <c>llamacpp:tokens_predicted_total</c>).</summary>
    public async Task<double> MetricAsync(string name, CancellationToken cancellationToken = default)
    {
        var text = await _client.GetStringAsync(new Uri("metrics", UriKind.Relative), cancellationToken);
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && line.Length > name.Length && line[name.Length] is ' ' or '{')
            {
                var value = line[(line.LastIndexOf(' ') + 1)..];
                return double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"llama-server's /metrics has no {name}");
    }

    /// <summary>Completion tokens the server generated so far, by its own count (a request's tokens
    /// are added when its slot is released: the answer completed or its task was cancelled).</summary>
    public Task<double> TokensPredictedAsync() => MetricAsync("llamacpp:tokens_predicted_total");

    /// <summary>Polls <c>/metrics</c> until no request is processing (every slot released, its tokens
    /// counted); false if that did not happen within <paramref name="timeout"/>.</summary>
    public async Task<bool> WaitIdleAsync(TimeSpan timeout)
    {
        var bound = Stopwatch.StartNew();
        while (bound.Elapsed < timeout)
        {
            if (await MetricAsync("llamacpp:requests_processing") == 0)
            {
                return true;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(5));
        }

        return false;
    }

    public async ValueTask DisposeAsync()
    {
        Kill(_process);
        using (var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
        {
            try
            {
                await _process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
            }
        }

        _process.Dispose();
        _client.Dispose();
        lock (_output)
        {
            _output.Dispose();
        }
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
    }
}
