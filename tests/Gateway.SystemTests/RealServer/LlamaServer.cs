using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>
/// A real llama.cpp <c>llama-server</c> (built by tests/real-server/build, found through
/// <c>LLAMA_SERVER_BIN</c> and <c>LLAMA_MODEL</c>) on 127.0.0.1 and a port it picked itself
/// (<c>--port 0</c>, read back from its "listening on" line). Its log is kept line by line so a test
/// can wait on a line (a task cancelled, a slot released); its <c>/metrics</c> are the server's own
/// count of the tokens it generated.
/// </summary>
internal sealed partial class LlamaServer : IAsyncDisposable
{
    /// <summary>Slots: two streams at once (a superseded one ending while its successor starts).</summary>
    public const int Slots = 2;

    private readonly Process _process;
    private readonly Lock _gate = new();
    private readonly List<string> _lines = [];
    private readonly List<(int From, Func<string, bool> Match, TaskCompletionSource<string> Found)> _waiters = [];
    private string? _exited;

    private LlamaServer(Process process) => _process = process;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Lines logged so far: a mark to wait for lines after.</summary>
    public int LineCount
    {
        get
        {
            lock (_gate)
            {
                return _lines.Count;
            }
        }
    }

    /// <summary>Where the tests find the binary and the model; fails, naming the script, when they are missing.</summary>
    public static (string Binary, string Model) Locate()
    {
        var binary = Environment.GetEnvironmentVariable("LLAMA_SERVER_BIN");
        var model = Environment.GetEnvironmentVariable("LLAMA_MODEL");
        if (string.IsNullOrEmpty(binary) || string.IsNullOrEmpty(model))
        {
            throw new InvalidOperationException(
                "LLAMA_SERVER_BIN and LLAMA_MODEL are not set: run tests/real-server/build (tests/run does, and exports them), " +
                "or export what it prints before dotnet test: eval \"$(tests/real-server/build)\"; export LLAMA_SERVER_BIN LLAMA_MODEL");
        }

        if (!File.Exists(binary) || !File.Exists(model))
        {
            throw new InvalidOperationException(
                $"LLAMA_SERVER_BIN ({binary}) or LLAMA_MODEL ({model}) does not exist: run tests/real-server/build again.");
        }

        return (binary, model);
    }

    /// <summary>Starts llama-server and returns once it is listening and /health answers 200.</summary>
    public static async Task<LlamaServer> StartAsync()
    {
        var (binary, model) = Locate();
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // One thread: on a 2-core machine more threads spin-wait beside the tests and stall both.
        foreach (var argument in new[]
                 {
                     "-m", model, "--host", "127.0.0.1", "--port", "0", "-t", "1", "-tb", "1", "-np", Slots.ToString(CultureInfo.InvariantCulture),
                     "-c", "4096", "--no-webui", "--metrics", "--log-colors", "off",
                 })
        {
            start.ArgumentList.Add(argument);
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var server = new LlamaServer(process);
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data);
        process.Exited += (_, _) => server.OnExited();
        if (!process.Start())
        {
            throw new InvalidOperationException($"{binary} did not start");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            // Logged once the model is loaded and the HTTP port is bound (and /health says ok).
            var listening = await server.WaitForLineAsync(line => line.Contains("listening on http://", StringComparison.Ordinal));
            server.BaseAddress = new Uri(listening[(listening.IndexOf("http://", StringComparison.Ordinal))..].Trim() + "/");
            using var client = server.NewClient();
            using var health = await client.GetAsync("/health");
            if (!health.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"llama-server said it was listening, but /health answered {(int)health.StatusCode}");
            }
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return server;
    }

    /// <summary>A client of the server itself (metrics, health), not through the gateway.</summary>
    public HttpClient NewClient() => new() { BaseAddress = BaseAddress, Timeout = Wait.Timeout };

    /// <summary>The first line from index <paramref name="from"/> on that matches; fails after <see cref="Wait.Timeout"/>
    /// or when the server exits, with the log's tail in the message.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, int from = 0)
    {
        TaskCompletionSource<string> found;
        lock (_gate)
        {
            for (var i = from; i < _lines.Count; i++)
            {
                if (match(_lines[i]))
                {
                    return _lines[i];
                }
            }

            if (_exited is not null)
            {
                throw new InvalidOperationException($"llama-server {_exited}; its log ends:\n{Tail()}");
            }

            found = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((from, match, found));
        }

        try
        {
            return await found.Task.WaitAsync(Wait.Timeout);
        }
        catch (TimeoutException)
        {
            lock (_gate)
            {
                throw new TimeoutException($"llama-server logged no awaited line within {Wait.Timeout}; its log ends:\n{Tail()}");
            }
        }
    }

    /// <summary>
    /// Waits for the server to cancel a task (its "cancel task, id_task = N" line, logged when the
    /// connection it streams to is gone) and to release that task's slot, after <paramref name="from"/>.
    /// Returns the task id.
    /// </summary>
    public async Task<int> WaitForCancelledTaskAsync(int from)
    {
        var line = await WaitForLineAsync(l => l.Contains("cancel task, id_task = ", StringComparison.Ordinal), from);
        var id = int.Parse(CancelledTask().Match(line).Groups[1].Value, CultureInfo.InvariantCulture);
        await WaitForReleaseAsync(id, from);
        return id;
    }

    /// <summary>Waits for task <paramref name="taskId"/>'s slot to be released: from then on its tokens are in /metrics.</summary>
    public Task WaitForReleaseAsync(int taskId, int from) =>
        WaitForLineAsync(l => l.Contains($"| task {taskId} | stop processing", StringComparison.Ordinal), from);

    /// <summary>Waits until <paramref name="count"/> slots were released after <paramref name="from"/>.</summary>
    public async Task WaitForReleasesAsync(int count, int from)
    {
        var seen = 0;
        var next = from;
        while (seen < count)
        {
            await WaitForLineAsync(l => l.Contains("| stop processing", StringComparison.Ordinal), next);
            lock (_gate)
            {
                next = _lines.FindIndex(next, l => l.Contains("| stop processing", StringComparison.Ordinal)) + 1;
            }

            seen++;
        }
    }

    /// <summary>The task ids cancelled after <paramref name="from"/>.</summary>
    public IReadOnlyList<int> CancelledTasks(int from)
    {
        lock (_gate)
        {
            return [.. _lines.Skip(from).Select(l => CancelledTask().Match(l)).Where(m => m.Success)
                .Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture))];
        }
    }

    /// <summary>One counter or gauge of the server's /metrics (names like <c>llamacpp:tokens_predicted_total</c>).</summary>
    public async Task<double> MetricAsync(string name)
    {
        using var client = NewClient();
        var samples = await PromText.ParseAsync(client);
        return samples.Single(s => s.Name == name).Value;
    }

    /// <summary>Completion tokens the server generated so far, by its own count: a slot's tokens are
    /// added when it is released (the answer completed or its task was cancelled).</summary>
    public Task<double> TokensPredictedAsync() => MetricAsync("llamacpp:tokens_predicted_total");

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            await _process.WaitForExitAsync();
        }
        catch (InvalidOperationException)
        {
            // never started
        }

        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_gate)
        {
            _lines.Add(line);
            var index = _lines.Count - 1;
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].From <= index && _waiters[i].Match(line))
                {
                    _waiters[i].Found.TrySetResult(line);
                    _waiters.RemoveAt(i);
                }
            }
        }
    }

    private void OnExited()
    {
        // Exited can run before the last lines were read; WaitForExit() drains the redirected streams.
        _process.WaitForExit();
        lock (_gate)
        {
            _exited = $"exited with code {_process.ExitCode}";
            foreach (var waiter in _waiters)
            {
                waiter.Found.TrySetException(new InvalidOperationException($"llama-server {_exited}; its log ends:\n{Tail()}"));
            }

            _waiters.Clear();
        }
    }

    private string Tail() => string.Join('\n', _lines.Skip(Math.Max(0, _lines.Count - 30)));

    [GeneratedRegex(@"cancel task, id_task = (\d+)")]
    private static partial Regex CancelledTask();
}
