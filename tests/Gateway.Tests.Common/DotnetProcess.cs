using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Testing;

/// <summary>
/// A .NET program a test starts as its own process (<c>dotnet Gateway.dll</c>, <c>dotnet Gateway.Bench.dll</c>),
/// with the dotnet host that runs the tests, its stdout and stderr kept line by line as one text so a test can
/// wait for a line and show everything the program said when it fails.
/// </summary>
internal sealed partial class DotnetProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<Awaited> _awaited = [];
    private readonly Task _ended;

    private DotnetProcess(ProcessStartInfo start)
    {
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        // Completes once the process has exited and all of its output has been read.
        _ended = _process.WaitForExitAsync();
    }

    /// <summary>The dotnet host running these tests (else the one on PATH): the same runtime for the child.</summary>
    public static string Host =>
        Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";

    public int Id => _process.Id;

    /// <summary>Everything the process wrote so far, stdout and stderr interleaved as read.</summary>
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

    /// <summary>Starts <c>dotnet <paramref name="dll"/> <paramref name="arguments"/></c> from this test project's
    /// output folder; <paramref name="configure"/> may set its environment.</summary>
    public static DotnetProcess Start(string dll, IEnumerable<string> arguments, Action<ProcessStartInfo>? configure = null)
    {
        var start = new ProcessStartInfo(Host)
        {
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, dll));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        configure?.Invoke(start);
        return new DotnetProcess(start);
    }

    /// <summary>Starts a web program of this solution (the gateway, the mock) on 127.0.0.1 and a port the OS picks,
    /// whatever the environment says about URLs, and returns once it has said where it listens.</summary>
    public static async Task<(DotnetProcess Process, Uri BaseAddress)> StartListeningAsync(
        string dll, TimeSpan timeout, Action<ProcessStartInfo>? configure = null)
    {
        var process = Start(dll, ["--urls", "http://127.0.0.1:0"], start =>
        {
            foreach (var name in new[] { "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS" })
            {
                start.Environment.Remove(name);
            }

            start.Environment["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information"; // the line that says which port
            configure?.Invoke(start);
        });

        try
        {
            await process.WaitForOutputAsync("Now listening on: ", timeout);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }

        return (process, new Uri(Listening().Match(process.Output).Groups[1].Value.TrimEnd('/') + "/"));
    }

    /// <summary>Completes when <paramref name="times"/> lines of the output contain <paramref name="text"/> (at once
    /// if they did); throws with the output if the process exits without writing them or <paramref name="timeout"/> passes.</summary>
    public async Task WaitForOutputAsync(string text, TimeSpan timeout, int times = 1)
    {
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_output)
        {
            var already = _output.ToString().Split('\n').Count(line => line.Contains(text, StringComparison.Ordinal));
            if (already >= times)
            {
                return;
            }

            _awaited.Add(new Awaited(text, times - already, seen));
        }

        try
        {
            await Task.WhenAny(seen.Task, _ended).WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The process did not say \"{text}\" ({times} times) within {timeout}:\n{Output}");
        }

        if (!seen.Task.IsCompleted)
        {
            throw new InvalidOperationException($"The process exited with {_process.ExitCode} without saying \"{text}\":\n{Output}");
        }
    }

    /// <summary>The exit code once the process has exited by itself and all its output is read; a
    /// <see cref="TimeoutException"/> with the output if that takes longer than <paramref name="timeout"/>.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        try
        {
            await _ended.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The process did not exit within {timeout}:\n{Output}");
        }

        return _process.ExitCode;
    }

    /// <summary>Kills the process and its children if they still run.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _ended;
        _process.Dispose();
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var awaited in _awaited)
            {
                if (line.Contains(awaited.Text, StringComparison.Ordinal) && --awaited.Remaining == 0)
                {
                    awaited.Seen.TrySetResult();
                }
            }
        }
    }

    /// <summary>A wait for <see cref="Remaining"/> more lines containing <see cref="Text"/>.</summary>
    private sealed class Awaited(string text, int remaining, TaskCompletionSource seen)
    {
        public string Text { get; } = text;

        public int Remaining { get; set; } = remaining;

        public TaskCompletionSource Seen { get; } = seen;
    }

    [GeneratedRegex(@"Now listening on: (http://[0-9A-Za-z.\-\[\]:]+)")]
    private static partial Regex Listening();
}
