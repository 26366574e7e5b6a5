using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Bench.Proxies;

/// <summary>
/// A proxy under test in a process of its own, so its CPU and memory can be read from <c>/proc</c>:
/// the gateway as shipped (<c>dotnet Gateway.dll</c> with its appsettings.json), a bare YARP host
/// (this binary re-executed with <c>--plain-yarp</c>), or nginx with a generated loopback config.
/// Output goes to a log file beside the results; start-up waits for each proxy's own "listening" line.
/// </summary>
internal sealed class ProxyProcess : IAsyncDisposable
{
    private readonly Process _process;
    private ProcessStartInfo? _stop;
    private StreamWriter? _output;
    private Task? _listening;

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

    private static string? NginxPath => Gateway.Testing.RollingDeploy.Nginx;

    public static async Task<ProxyProcess> StartAsync(string leg, Uri upstream, string logDirectory, string nginxWorkers,
        IReadOnlyDictionary<string, string> dotnetEnvironment)
    {
        Directory.CreateDirectory(logDirectory);
        var port = FreePort();
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        var url = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}";
        var log = Path.Combine(logDirectory, $"{leg}.log");
        var start = new ProcessStartInfo
        {
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var name in new[] { "ASPNETCORE_URLS", "ASPNETCORE_HTTP_PORTS", "ASPNETCORE_HTTPS_PORTS", "DOTNET_URLS", "ASPNETCORE_ENVIRONMENT" })
        {
            start.Environment.Remove(name);
        }

        // The line each proxy prints once its socket listens: the signal start-up waits on.
        string ready;
        switch (leg)
        {
            case LegNames.Gateway:
                start.Environment["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = upstream.ToString();
                // Every per-stream feature on, so the ratio to plain YARP includes them: session affinity,
                // exact usage asked of the upstream (and its extra chunk taken out), a token budget per
                // tenant (each bench session is a tenant; high enough never to refuse), prices.
                start.Environment["ReverseProxy__Routes__llm__Metadata__SessionStreams.Affinity"] = "true";
                start.Environment["ReverseProxy__Routes__llm__Metadata__SessionStreams.IncludeUsage"] = "true";
                start.Environment["Gateway__RateLimits__TokensPerMinute"] = "100000000";
                // The resume phase's route: /resume/… to the same cluster, resumable for 30 s; the other phases do not use it.
                start.Environment["ReverseProxy__Routes__resume__ClusterId"] = "llm";
                start.Environment["ReverseProxy__Routes__resume__Order"] = "-1";
                start.Environment["ReverseProxy__Routes__resume__Match__Path"] = "/resume/{**rest}";
                start.Environment["ReverseProxy__Routes__resume__Transforms__0__PathRemovePrefix"] = "/resume";
                start.Environment["ReverseProxy__Routes__resume__Metadata__SessionStreams"] = "true";
                start.Environment["ReverseProxy__Routes__resume__Metadata__SessionStreams.Resume"] = "00:00:30";
                start.Environment["Gateway__Pricing__Models__*__InputPerMillion"] = "1";
                start.Environment["Gateway__Pricing__Models__*__OutputPerMillion"] = "2";
                start.FileName = DotnetHost;
                start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.dll"));
                start.ArgumentList.Add("--urls");
                start.ArgumentList.Add(url);
                ready = "Now listening on";
                break;
            case LegNames.PlainYarp:
                // "The gateway with its features off": the same runtime settings as Gateway.dll's
                // runtimeconfig (ThreadPoolSpinCount 0 in gateway/Gateway.csproj), so the ratio is the features' cost.
                start.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
                start.FileName = DotnetHost;
                foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Gateway.Bench.dll"), "--plain-yarp", "--urls", url, "--upstream", upstream.ToString() })
                {
                    start.ArgumentList.Add(arg);
                }

                ready = "Now listening on";
                break;
            case LegNames.Nginx:
                var prefix = Path.Combine(logDirectory, "nginx");
                Directory.CreateDirectory(prefix);
                var config = Path.Combine(prefix, "nginx.conf");
                await File.WriteAllTextAsync(config, NginxConfig(prefix, endPoint, upstream, nginxWorkers));
                start.FileName = NginxPath ?? "nginx";
                foreach (var arg in new[] { "-p", prefix, "-c", config, "-g", "daemon off;" })
                {
                    start.ArgumentList.Add(arg);
                }

                ready = "start worker process"; // logged (notice level, to stderr) after the listen socket is bound
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(leg), leg, "no proxy for this leg");
        }

        // After the leg's own settings, so that a phase (or --proxy-env) can override them.
        if (leg is LegNames.Gateway or LegNames.PlainYarp)
        {
            foreach (var (name, value) in dotnetEnvironment)
            {
                start.Environment[name] = value;
            }
        }

        var output = new StreamWriter(log, append: true) { AutoFlush = true };
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
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

            if (e.Data.Contains(ready, StringComparison.Ordinal))
            {
                listening.TrySetResult();
            }
        }

        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"{leg} exited before listening"));
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {leg}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var proxy = new ProxyProcess(leg, process, endPoint) { _output = output, _listening = listening.Task };
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
        if (_output is not null)
        {
            lock (_output)
            {
                _output.Dispose();
            }
        }
    }

    private List<int> Pids() => Leg == LegNames.Nginx ? ProcessStats.WithChildren(Pid) : [Pid];

    /// <summary>Waits for the proxy's own "listening" line, then checks it answers once.</summary>
    private async Task WaitHealthyAsync(string log)
    {
        try
        {
            await _listening!.WaitAsync(TimeSpan.FromSeconds(60));
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            using var response = await client.GetAsync(new Uri($"http://{EndPoint}/healthz"));
            response.EnsureSuccessStatusCode();
        }
        catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or HttpRequestException or TaskCanceledException)
        {
            string output;
            lock (_output!)
            {
                _output.Flush();
                output = File.Exists(log) ? File.ReadAllText(log) : "(no output)";
            }

            throw new InvalidOperationException($"{Leg} did not become healthy on {EndPoint} ({ex.Message}). Its output:\n{output}", ex);
        }
    }

    private static string DotnetHost =>
        Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet" ? host : "dotnet";


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
            error_log stderr notice;
            events {
                worker_connections {{files}};
            }
            http {
                access_log off;
                client_max_body_size 2m;
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
                    location = /healthz {
                        return 200 "ok";
                    }
                    location / {
                        proxy_pass http://llm;
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                        proxy_buffering off;
                        proxy_request_buffering off;
                        proxy_read_timeout 300s;
                    }
                }
            }
            """;
    }
}
