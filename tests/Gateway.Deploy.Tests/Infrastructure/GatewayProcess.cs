using System.Diagnostics;

namespace Gateway.Deploy.Tests.Infrastructure;

/// <summary>The real gateway as a child process (<c>dotnet Gateway.dll</c> from this project's output,
/// as the container runs it), listening on a loopback port the OS picks.</summary>
internal sealed class GatewayProcess : IAsyncDisposable
{
    public static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly DotnetProcess _process;

    private GatewayProcess(DotnetProcess process, Uri baseAddress)
    {
        _process = process;
        BaseAddress = baseAddress;
    }

    public Uri BaseAddress { get; }

    public string Output => _process.Output;

    /// <summary>Starts the gateway with <paramref name="environment"/> on top of its appsettings.json and
    /// returns once it has said where it listens and answered <c>/healthz</c>.</summary>
    public static async Task<GatewayProcess> StartAsync(IReadOnlyDictionary<string, string> environment)
    {
        var (process, baseAddress) = await DotnetProcess.StartListeningAsync("Gateway.dll", StartTimeout, start =>
        {
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }
        });

        try
        {
            var gateway = new GatewayProcess(process, baseAddress);
            await gateway.WaitHealthyAsync();
            return gateway;
        }
        catch (Exception e)
        {
            await process.DisposeAsync();
            throw new InvalidOperationException($"The gateway did not start: {e.Message}\n{process.Output}", e);
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
    public Task WaitForOutputAsync(string text, TimeSpan timeout, int times = 1) => _process.WaitForOutputAsync(text, timeout, times);

    /// <summary>Sends SIGTERM, as the kubelet does (<see cref="Process.Kill()"/> would send SIGKILL).</summary>
    public Task TerminateAsync()
    {
        ProcessSignals.Terminate(_process.Id);
        return Task.CompletedTask;
    }

    /// <summary>The process's exit code once it has exited by itself.</summary>
    public Task<int> WaitForExitAsync(TimeSpan timeout) => _process.WaitForExitAsync(timeout);

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
