using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using MockLlm;

namespace Gateway.Testing;

/// <summary>
/// A rolling deploy on loopback, measured: two gateway processes behind nginx (Debian's, with its default
/// <c>proxy_next_upstream error timeout</c>), long streams through nginx to the mock, one replica sent SIGTERM
/// mid-stream as the kubelet does. What every client read is compared with the mock's ledger. Linked into
/// Gateway.Deploy.Tests (the test) and Gateway.Bench (the figures).
/// </summary>
internal static class RollingDeploy
{
    public static readonly string[] NginxPaths = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"];

    public static string? Nginx => NginxPaths.FirstOrDefault(File.Exists);

    /// <param name="Streams">Streams open through nginx when the replica is sent SIGTERM.</param>
    /// <param name="StreamTokens">Tokens each stream generates (at <paramref name="TokensPerSecond"/>: its length).</param>
    /// <param name="TerminateAtTokens">Every stream has streamed this many tokens when SIGTERM is sent.</param>
    /// <param name="RequestsDuringDrain">Short requests sent through nginx once the terminated replica's listener closed.</param>
    public sealed record Options(
        int Streams = 8,
        int StreamTokens = 300,
        double TokensPerSecond = 10,
        int TerminateAtTokens = 30,
        int RequestsDuringDrain = 10,
        string DrainTimeout = "00:02:00",
        string ReadinessDelay = "00:00:03");

    /// <param name="Whole">It ended with its end mark, no error event and no reset, and the client read every token the model server generated.</param>
    public sealed record StreamOutcome(string Session, bool Whole, int TokensRead, int TokensGenerated, bool Completed, string? Problem);

    /// <param name="StreamsOnTerminated">Streams the terminated replica was proxying when SIGTERM came (its own gauge).</param>
    /// <param name="ReadyzWhileDelayed">What the terminated replica's <c>/readyz</c> answered during its readiness delay.</param>
    /// <param name="Drain">From SIGTERM to the terminated replica's exit.</param>
    public sealed record Result(
        IReadOnlyList<StreamOutcome> Streams,
        int StreamsOnTerminated,
        int ReadyzWhileDelayed,
        IReadOnlyList<int> DrainRequestStatuses,
        int DrainRequestsWhole,
        TimeSpan Drain,
        int ExitCode,
        string TerminatedOutput)
    {
        public int StreamsReset => Streams.Count(s => !s.Whole);
    }

    public static async Task<Result> RunAsync(MockLlmServer mock, Options options, string workDirectory, TimeSpan timeout)
    {
        var environment = new Dictionary<string, string>
        {
            ["ASPNETCORE_ENVIRONMENT"] = "Production",
            ["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString(),
            ["Gateway__Shutdown__DrainTimeout"] = options.DrainTimeout,
            ["Gateway__Shutdown__ReadinessDelay"] = options.ReadinessDelay,
            // The streams here are one client's many sessions: no per-tenant limit may refuse them.
            ["Gateway__RateLimits__Anonymous"] = "Unlimited",
        };
        var (terminated, terminatedAddress) = await StartGatewayAsync(environment, timeout);
        await using var terminatedProcess = terminated;
        var (other, otherAddress) = await StartGatewayAsync(environment, timeout);
        await using var otherProcess = other;
        await using var nginx = await NginxBalancer.StartAsync(workDirectory, [terminatedAddress, otherAddress], timeout);
        using var http = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = nginx.BaseAddress, Timeout = Timeout.InfiniteTimeSpan };
        using var probe = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = timeout };

        var sessions = Enumerable.Range(0, options.Streams).Select(i => $"rolling-{i}-{Guid.NewGuid():N}").ToArray();
        var responses = new List<HttpResponseMessage>();
        foreach (var session in sessions)
        {
            responses.Add(await SendAsync(http, session, options.StreamTokens));
        }

        var reading = responses.Select(ReadAsync).ToArray();
        await mock.Ledger.WaitForAsync(l => sessions.All(s => l.Any(e => e.SessionId == s && e.TokensSent >= options.TerminateAtTokens)), timeout);
        var onTerminated = await ActiveStreamsAsync(probe, terminatedAddress);

        var sigterm = Stopwatch.StartNew();
        ProcessSignals.Terminate(terminated.Id);
        await terminated.WaitForOutputAsync("SIGTERM received", timeout);
        int readyz;
        using (var notReady = await probe.GetAsync(new Uri(terminatedAddress, "readyz")))
        {
            readyz = (int)notReady.StatusCode;
        }

        // The listener closes after the readiness delay; requests then reach the other replica by nginx's retry.
        await terminated.WaitForOutputAsync("Readiness delay over", timeout);
        // The line comes just before the host stops: until the listen socket is closed, a connection nginx opens can
        // land in its backlog and be reset with the request sent (nginx does not resend a POST then). Wait for the refusal.
        await ListenerClosedAsync(terminatedAddress, timeout);
        var statuses = new List<int>();
        var whole = 0;
        for (var i = 0; i < options.RequestsDuringDrain; i++)
        {
            using var response = await SendAsync(http, $"during-drain-{i}-{Guid.NewGuid():N}", tokens: 5);
            statuses.Add((int)response.StatusCode);
            var read = await ReadAsync(response);
            whole += read.Error is null && read.Done && !read.ErrorEvent ? 1 : 0;
        }

        var exitCode = await terminated.WaitForExitAsync(timeout + TimeSpan.FromMinutes(2));
        var drain = sigterm.Elapsed;
        var transcripts = await Task.WhenAll(reading).WaitAsync(timeout);
        var ledger = await mock.Ledger.WaitForAsync(l => sessions.All(s => l.Any(e => e.SessionId == s && e.EndedAt is not null)), timeout);
        foreach (var response in responses)
        {
            response.Dispose();
        }

        var outcomes = sessions.Select((session, i) =>
        {
            var entry = ledger.Single(e => e.SessionId == session);
            var t = transcripts[i];
            var problem = t.Error is not null ? $"read error: {t.Error.Message}"
                : t.ErrorEvent ? "an error event"
                : !t.Done ? "no end mark"
                : t.Tokens != entry.TokensSent ? $"read {t.Tokens} tokens of {entry.TokensSent} generated"
                : !entry.Completed ? "the model server did not complete it"
                : null;
            return new StreamOutcome(session, problem is null, t.Tokens, entry.TokensSent, entry.Completed, problem);
        }).ToList();
        return new Result(outcomes, onTerminated, readyz, statuses, whole, drain, exitCode, terminated.Output);
    }

    private static async Task<(DotnetProcess Process, Uri BaseAddress)> StartGatewayAsync(Dictionary<string, string> environment, TimeSpan timeout) =>
        await DotnetProcess.StartListeningAsync("Gateway.dll", timeout, start =>
        {
            foreach (var (key, value) in environment)
            {
                start.Environment[key] = value;
            }
        });

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string session, int tokens)
    {
        var body = JsonSerializer.Serialize(new
        {
            model = "mock-1",
            stream = true,
            max_tokens = tokens,
            messages = new[] { new { role = "user", content = "write a long answer" } },
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Session-Id", session);
        request.Headers.Add("X-Mock-Completion-Tokens", tokens.ToString(CultureInfo.InvariantCulture));
        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    private sealed record Read(int Tokens, bool Done, bool ErrorEvent, Exception? Error);

    /// <summary>Reads a Chat Completions stream to its end: the content chunks (one a token from the mock), the end
    /// mark, any error event; a reset or a truncated body is the read error.</summary>
    private static async Task<Read> ReadAsync(HttpResponseMessage response)
    {
        var tokens = 0;
        var done = false;
        var errorEvent = false;
        try
        {
            if (!response.IsSuccessStatusCode)
            {
                return new Read(0, false, true, null);
            }

            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data:", StringComparison.Ordinal))
                {
                    continue;
                }

                var data = line[5..].Trim();
                if (data == "[DONE]")
                {
                    done = true;
                    continue;
                }

                using var json = JsonDocument.Parse(data);
                if (json.RootElement.TryGetProperty("error", out _))
                {
                    errorEvent = true;
                }
                else if (json.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
                    && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
                    && !string.IsNullOrEmpty(content.GetString()))
                {
                    tokens++;
                }
            }

            return new Read(tokens, done, errorEvent, null);
        }
        catch (Exception e) when (e is IOException or HttpRequestException)
        {
            return new Read(tokens, done, errorEvent, e);
        }
    }

    /// <summary>The replica's <c>llm_gateway_streams_active</c>, summed over its series.</summary>
    private static async Task<int> ActiveStreamsAsync(HttpClient probe, Uri replica)
    {
        var text = await probe.GetStringAsync(new Uri(replica, "metrics"));
        return (int)text.Split('\n')
            .Where(l => l.StartsWith("llm_gateway_streams_active{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }

    /// <summary>Returns once a connect to <paramref name="address"/> is refused: its listener is closed. Each try that
    /// still connects is closed at once and the next one follows a moment later, within <paramref name="timeout"/>.</summary>
    private static async Task ListenerClosedAsync(Uri address, TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        while (true)
        {
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(address.Host, address.Port, deadline.Token);
            }
            catch (System.Net.Sockets.SocketException ex) when (ex.SocketErrorCode == System.Net.Sockets.SocketError.ConnectionRefused)
            {
                return;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(10), deadline.Token);
        }
    }

    /// <summary>nginx on a loopback port in front of the replicas, as an operator would put it before a streaming
    /// gateway: no buffering, a read timeout above the gateway's, the default retry of the next server on a connect error.</summary>
    private sealed class NginxBalancer : IAsyncDisposable
    {
        private readonly Process _process;
        private readonly string _prefix;
        private readonly string _config;

        private NginxBalancer(Process process, string prefix, string config, Uri baseAddress)
        {
            _process = process;
            _prefix = prefix;
            _config = config;
            BaseAddress = baseAddress;
        }

        public Uri BaseAddress { get; }

        /// <summary>Starts nginx on a free loopback port. The port is free when picked but nginx binds it a moment later, when
        /// another process of a parallel suite may have taken it; nginx then exits at once with "Address already in use",
        /// and another port is tried (three in all).</summary>
        public static async Task<NginxBalancer> StartAsync(string workDirectory, IReadOnlyList<Uri> replicas, TimeSpan timeout)
        {
            for (var attempt = 1; ; attempt++)
            {
                try
                {
                    return await StartOnceAsync(workDirectory, replicas, timeout);
                }
                catch (InvalidOperationException ex) when (attempt < 3 && ex.Message.Contains("Address already in use", StringComparison.Ordinal))
                {
                }
            }
        }

        private static async Task<NginxBalancer> StartOnceAsync(string workDirectory, IReadOnlyList<Uri> replicas, TimeSpan timeout)
        {
            var nginx = Nginx ?? throw new InvalidOperationException("nginx is not installed (apt-get install nginx-light; tests/run installs it)");
            var prefix = Path.Combine(workDirectory, "nginx-" + Guid.NewGuid().ToString("N")[..8]);
            Directory.CreateDirectory(prefix);
            var port = FreePort();
            var config = Path.Combine(prefix, "nginx.conf");
            await File.WriteAllTextAsync(config, Config(prefix, port, replicas));
            var start = new ProcessStartInfo(nginx, ["-p", prefix, "-c", config, "-g", "daemon off;"])
            {
                UseShellExecute = false,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
            };
            var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var output = new StringBuilder();
            var process = new Process { StartInfo = start, EnableRaisingEvents = true };
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

                if (e.Data.Contains("start worker process", StringComparison.Ordinal))
                {
                    ready.TrySetResult();
                }
            }

            process.ErrorDataReceived += OnLine;
            process.OutputDataReceived += OnLine;
            process.Exited += (_, _) =>
            {
                process.WaitForExit(); // the redirected output is read to its end, so the message holds nginx's last words
                string said;
                lock (output)
                {
                    said = output.ToString();
                }

                ready.TrySetException(new InvalidOperationException("nginx exited before it listened:\n" + said));
            };
            process.Start();
            process.BeginErrorReadLine();
            process.BeginOutputReadLine();
            var balancer = new NginxBalancer(process, prefix, config, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/"));
            try
            {
                await ready.Task.WaitAsync(timeout);
            }
            catch
            {
                await balancer.DisposeAsync();
                throw;
            }

            return balancer;
        }

        public async ValueTask DisposeAsync()
        {
            if (!_process.HasExited)
            {
                // The master stops its workers; a killed master would leave them behind.
                using var stop = Process.Start(new ProcessStartInfo(_process.StartInfo.FileName, ["-p", _prefix, "-c", _config, "-s", "stop"]) { UseShellExecute = false });
                await stop!.WaitForExitAsync();
                using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                try
                {
                    await _process.WaitForExitAsync(wait.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                }
            }

            _process.Dispose();
        }

        private static int FreePort()
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            return ((IPEndPoint)socket.LocalEndPoint!).Port;
        }

        /// <summary>No keepalive pool to the replicas: nginx resends a POST to the next server only when nothing of it was
        /// sent (a refused connect), and a pooled connection that a draining replica closes as nginx writes on it is not
        /// that case. (A pool works when the replica is taken out of nginx before SIGTERM, as Kubernetes' endpoints do.)</summary>
        private static string Config(string prefix, int port, IReadOnlyList<Uri> replicas) => $$"""
            worker_processes 1;
            pid {{prefix}}/nginx.pid;
            error_log stderr notice;
            events {
                worker_connections 1024;
            }
            http {
                access_log off;
                client_body_temp_path {{prefix}}/client_body;
                proxy_temp_path {{prefix}}/proxy;
                fastcgi_temp_path {{prefix}}/fastcgi;
                uwsgi_temp_path {{prefix}}/uwsgi;
                scgi_temp_path {{prefix}}/scgi;
                upstream gateways {
            {{string.Join("\n", replicas.Select(r => $"        server {r.Host}:{r.Port.ToString(CultureInfo.InvariantCulture)};"))}}
                }
                server {
                    listen 127.0.0.1:{{port.ToString(CultureInfo.InvariantCulture)}};
                    location / {
                        proxy_pass http://gateways;
                        proxy_http_version 1.1;
                        proxy_buffering off;
                        proxy_request_buffering off;
                        proxy_read_timeout 15m;
                        proxy_next_upstream error timeout;
                    }
                }
            }
            """;
    }
}
