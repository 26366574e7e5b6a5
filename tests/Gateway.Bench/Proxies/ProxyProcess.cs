using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Bench.Proxies;

/// <summary>
/// A proxy under test in a process of its own, so its CPU and memory can be read from <c>/proc</c>:
/// the gateway as shipped (<c>dotnet Gateway.dll</c> with its appsettings.json), a bare YARP host
/// (this binary re-executed with <c>--plain-yarp</c>), or nginx with a generated loopback config.
/// Output goes to a log file beside the results.
/// </summary>
internal sealed class ProxyProcess : IAsyncDisposable
{
    private readonly Process _process;
    private ProcessStartInfo? _stop;

    private ProxyProcess(string leg, Process process, IPEndPoint endPoint)
    {
        Leg = leg;
        _process = process;
        EndPoint = endPoint;
    }

    public string Leg { get; }

    public IPEndPoint EndPoint { get; }

    public int Pid => _process.Id;

    /// <summary>utime + stime of the proxy (nginx: master and workers), in ticks.</summary>
    public long CpuTicks() => Pids().Sum(ProcessStats.CpuTicks);

    /// <summary>VmRSS of the proxy (nginx: master and workers), in bytes.</summary>
    public long RssBytes() => Pids().Sum(ProcessStats.RssBytes);

    public static bool NginxInstalled => NginxPath is not null;

    private static string? NginxPath =>
        new[] { "/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx" }.FirstOrDefault(File.Exists);

    public static async Task<ProxyProcess> StartAsync(string leg, Uri upstream, string logDirectory, string nginxWorkers)
    {
        Directory.CreateDirectory(logDirectory);
        var port = FreePort();
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        var url = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";
        var log = Path.Combine(logDirectory, $"{leg}.log");
        var start = new ProcessStartInfo("/bin/sh") { UseShellExecute = false, WorkingDirectory = AppContext.BaseDirectory };
        foreach (var name in new[] { "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS", "ASPNETCORE_ENVIRONMENT" })
        {
            start.Environment.Remove(name);
        }

        string command;
        switch (leg)
        {
            case LegNames.Gateway:
                start.Environment["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = upstream.ToString();
                command = $"exec {Quote(DotnetHost)} {Quote(Path.Combine(AppContext.BaseDirectory, "Gateway.dll"))} --urls {url}";
                break;
            case LegNames.PlainYarp:
                command = $"exec {Quote(DotnetHost)} {Quote(Path.Combine(AppContext.BaseDirectory, "Gateway.Bench.dll"))} --plain-yarp --urls {url} --upstream {upstream}";
                break;
            case LegNames.Nginx:
                var prefix = Path.Combine(logDirectory, "nginx");
                Directory.CreateDirectory(prefix);
                var config = Path.Combine(prefix, "nginx.conf");
                await File.WriteAllTextAsync(config, NginxConfig(prefix, endPoint, upstream, nginxWorkers));
                command = $"exec {Quote(NginxPath ?? "nginx")} -p {Quote(prefix)} -c {Quote(config)} -g 'daemon off;'";
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(leg), leg, "no proxy for this leg");
        }

        start.ArgumentList.Add("-c");
        start.ArgumentList.Add($"{command} >>{Quote(log)} 2>&1");
        var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {leg}");
        var proxy = new ProxyProcess(leg, process, endPoint);
        if (leg == LegNames.Nginx)
        {
            var prefix = Path.Combine(logDirectory, "nginx");
            proxy._stop = new ProcessStartInfo(NginxPath ?? "nginx", ["-p", prefix, "-c", Path.Combine(prefix, "nginx.conf"), "-s", "stop"]) { UseShellExecute = false };
        }

        try
        {
            await proxy.WaitHealthyAsync(log);
        }
        catch
        {
            await proxy.DisposeAsync();
            throw;
        }

        return proxy;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                if (Leg == LegNames.Nginx && _stop is not null)
                {
                    // The master stops its workers; a killed master would leave them behind.
                    using var stop = Process.Start(_stop);
                    await stop!.WaitForExitAsync();
                }
                else
                {
                    _process.Kill();
                }
            }

            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await _process.WaitForExitAsync(wait.Token);
        }
        catch (Exception ex) when (ex is InvalidOperationException or OperationCanceledException)
        {
        }

        _process.Dispose();
    }

    private List<int> Pids() => Leg == LegNames.Nginx ? ProcessStats.WithChildren(Pid) : [Pid];

    private async Task WaitHealthyAsync(string log)
    {
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (_process.HasExited)
            {
                break;
            }

            try
            {
                using var response = await client.GetAsync(new Uri($"http://{EndPoint}/healthz"));
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        var output = File.Exists(log) ? await File.ReadAllTextAsync(log) : "(no output)";
        throw new InvalidOperationException($"{Leg} did not become healthy on {EndPoint}. Its output:\n{output}");
    }

    private static string DotnetHost =>
        Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";

    private static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static int FreePort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }

    /// <summary>nginx as a streaming LLM proxy is configured: no response buffering, HTTP/1.1 with
    /// pooled keep-alive connections upstream (as YARP's), everything in <paramref name="prefix"/>.</summary>
    private static string NginxConfig(string prefix, IPEndPoint listen, Uri upstream, string workers)
    {
        var files = ProcessStats.OpenFilesLimit();
        return $$"""
            worker_processes {{workers}};
            worker_rlimit_nofile {{files}};
            pid {{prefix}}/nginx.pid;
            error_log {{prefix}}/error.log warn;
            events {
                worker_connections {{files}};
            }
            http {
                access_log off;
                client_body_temp_path {{prefix}}/client_body;
                proxy_temp_path {{prefix}}/proxy;
                fastcgi_temp_path {{prefix}}/fastcgi;
                uwsgi_temp_path {{prefix}}/uwsgi;
                scgi_temp_path {{prefix}}/scgi;
                upstream llm {
                    server {{upstream.Host}}:{{upstream.Port}};
                    keepalive 1024;
                }
                server {
                    listen {{listen}} backlog=4096;
                    location / {
                        proxy_pass http://llm;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                        proxy_read_timeout 300s;
                    }
                }
            }
            """;
    }
}
