using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Deploy.Tests.Infrastructure;

/// <summary>The real gateway as a child process (<c>dotnet Gateway.dll</c> from this project's output,
/// as the container runs it), listening on a loopback port the OS picks.</summary>
internal sealed partial class GatewayProcess : IAsyncDisposable
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly Process _process;
    private readonly StringBuilder _output;
    private readonly List<(string Text, TaskCompletionSource Seen)> _awaited;

    private GatewayProcess(Process process, StringBuilder output, List<(string, TaskCompletionSource)> awaited, Uri baseAddress)
    {
        _awaited = awaited;
        _process = process;
        _output = output;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>Starts the gateway with <paramref name="environment"/> on top of its appsettings.json and
    /// returns once it has said where it listens and answered <c>/healthz</c>.</summary>
    public static async Task<GatewayProcess> StartAsync(IReadOnlyDictionary<string, string> environment)
    {
        var dotnet = Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.dll"));
        start.ArgumentList.Add("--urls");
        start.ArgumentList.Add("http://127.0.0.1:0");
        foreach (var name in new[] { "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS" })
        {
            start.Environment.Remove(name);
        }

        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        // The line that says which port the OS picked.
        start.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var output = new StringBuilder();
        var awaited = new List<(string Text, TaskCompletionSource Seen)>();
        var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        void OnLine(object? _, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
                foreach (var (text, seen) in awaited)
                {
                    if (e.Data.Contains(text, StringComparison.Ordinal))
                    {
                        seen.TrySetResult();
                    }
                }
            }

            if (Listening().Match(e.Data) is { Success: true } m)
            {
                listening.TrySetResult(new Uri(m.Groups[1].Value.TrimEnd('/') + "/"));
            }
        }

        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"The gateway exited with {process.ExitCode} before listening."));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var gateway = new GatewayProcess(process, output, awaited, new Uri("http://127.0.0.1/"));
        try
        {
            var baseAddress = await listening.Task.WaitAsync(StartTimeout);
            gateway = new GatewayProcess(process, output, awaited, baseAddress);
            await gateway.WaitHealthyAsync();
            return gateway;
        }
        catch (Exception e)
        {
            await gateway.DisposeAsync();
            throw new InvalidOperationException($"The gateway did not start: {e.Message}\n{gateway.Output}", e);
        }
    }

    /// <summary>The gateway said it listens (the signal waited on above); one probe confirms it serves.</summary>
    private async Task WaitHealthyAsync()
    {
        using var http = new HttpClient { BaseAddress = BaseAddress, Timeout = StartTimeout };
        using var response = await http.GetAsync(new Uri("healthz", UriKind.Relative));
        if (!response.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"/healthz answered {(int)response.StatusCode} after the gateway said it listens.");
        }
    }

    /// <summary>Completes when a line of the gateway's output contains <paramref name="text"/> (at once if one did).</summary>
    public Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            if (_output.ToString().Contains(text, StringComparison.Ordinal))
            {
                return Task.CompletedTask;
            }

            _awaited.Add((text, seen));
        }

        return WaitAsync(seen.Task, text, timeout);
    }

    private async Task WaitAsync(Task seen, string text, TimeSpan timeout)
    {
        try
        {
            await seen.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The gateway did not say \"{text}\" within {timeout}:\n{Output}");
        }
    }

    /// <summary>Sends SIGTERM, as the kubelet does (<see cref="Process.Kill()"/> would send SIGKILL).</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            UseShellExecute = false,
        })!;
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -TERM {_process.Id} exited with {kill.ExitCode}.");
        }
    }

    /// <summary>The process's exit code once it has exited by itself.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The gateway did not exit within {timeout}:\n{Output}");
        }

        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }

    [GeneratedRegex(@"Now listening on: (http://[0-9A-Za-z.\-\[\]:]+)")]
    private static partial Regex Listening();
}
