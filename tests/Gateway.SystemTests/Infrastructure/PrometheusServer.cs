using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A real Prometheus server (Debian package <c>prometheus</c>) on a loopback port, scraping one
/// target every second, with its data in a temporary folder that is removed afterwards.
/// </summary>
internal sealed class PrometheusServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _folder;
    private readonly HttpClient _http;

    private PrometheusServer(Process process, string folder, Uri address)
    {
        _process = process;
        _folder = folder;
        _http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(10) };
    }

    public static async Task<PrometheusServer> StartAsync(Uri target)
    {
        var folder = Directory.CreateTempSubdirectory("gateway-prometheus-").FullName;
        var config = Path.Combine(folder, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: llm-gateway
                static_configs:
                  - targets: ["127.0.0.1:{target.Port}"]
            """);
        var port = FreePort();
        var start = new ProcessStartInfo("prometheus")
        {
            ArgumentList =
            {
                $"--config.file={config}",
                $"--storage.tsdb.path={Path.Combine(folder, "data")}",
                $"--web.listen-address=127.0.0.1:{port}",
                "--log.level=info",
            },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        // Prometheus says when it serves queries; that line is the signal start-up waits on.
        var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Text.StringBuilder();
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
            {
                return;
            }

            lock (output)
            {
                output.AppendLine(e.Data);
            }

            if (e.Data.Contains("Server is ready to receive web requests", StringComparison.Ordinal))
            {
                ready.TrySetResult();
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => ready.TrySetException(new InvalidOperationException("prometheus exited before it was ready"));
        if (!process.Start())
        {
            throw new InvalidOperationException("prometheus did not start (Debian package prometheus; tests/run installs it)");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PrometheusServer(process, folder, new Uri($"http://127.0.0.1:{port}/"));
        try
        {
            await ready.Task.WaitAsync(Wait.Timeout);
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
        {
            await server.DisposeAsync();
            lock (output)
            {
                throw new InvalidOperationException($"Prometheus was not ready: {ex.Message}\n{output}", ex);
            }
        }

        return server;
    }

    /// <summary>Runs an instant PromQL query; the value of its single sample, or null when it has none.</summary>
    public async Task<double?> QueryScalarAsync(string promql)
    {
        using var response = await _http.GetAsync("api/v1/query?query=" + Uri.EscapeDataString(promql));
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var result = json.RootElement.GetProperty("data").GetProperty("result");
        if (result.GetArrayLength() == 0)
        {
            return null;
        }

        return double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
    }

    /// <summary>Prometheus's view of the targets, for failure messages.</summary>
    public async Task<string> TargetsAsync()
    {
        try
        {
            return await _http.GetStringAsync("api/v1/targets");
        }
        catch (HttpRequestException ex)
        {
            return ex.Message;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _http.Dispose();
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    private static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
