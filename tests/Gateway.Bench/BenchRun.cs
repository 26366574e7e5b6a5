using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Bench.Load;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;
using Gateway.Bench.Upstream;
using MockLlm;

namespace Gateway.Bench;

/// <summary>
/// One run: the mock in this process, each proxy in its own, the same workloads through each leg.
/// Phases run one leg at a time (the first-token phase interleaves them), quiet phases first.
/// </summary>
internal sealed class BenchRun : IAsyncDisposable
{
    private static readonly TimeSpan StepTimeout = TimeSpan.FromSeconds(15);

    private readonly BenchOptions _options;
    private readonly MockLlmServer _mock;
    private readonly string _logDirectory;
    private readonly Dictionary<string, ProxyProcess> _proxies = [];
    private readonly BenchResult _result;
    private readonly Random _random = new(7);

    private BenchRun(BenchOptions options, MockLlmServer mock, string logDirectory, BenchResult result)
    {
        _options = options;
        _mock = mock;
        _logDirectory = logDirectory;
        _result = result;
    }

    private Ledger Ledger => _mock.Ledger;

    private IPEndPoint MockEndPoint => new(IPAddress.Loopback, _mock.BaseAddress.Port);

    public static async Task<int> RunAsync(BenchOptions options)
    {
        var clock = Stopwatch.StartNew();
        var limit = ProcessStats.OpenFilesLimit();
        // Each stream holds two descriptors in this process (client, mock) and two in the proxy
        // (client side, upstream side); keep a reserve for everything else.
        var maxStreams = (int)Math.Min(int.MaxValue, Math.Max(10, (limit - 1000) / 2));
        var legs = options.Legs.Where(l => l != LegNames.Nginx || ProxyProcess.NginxInstalled).ToList();
        var result = new BenchResult
        {
            StartedAt = DateTimeOffset.UtcNow,
            Smoke = options.Smoke,
            OpenFilesLimit = limit,
            MaxStreams = maxStreams,
            NginxWorkers = options.NginxWorkers,
            CancelTokensPerSecond = options.CancelTokensPerSecond,
        };
        if (options.Legs.Contains(LegNames.Nginx) && !ProxyProcess.NginxInstalled)
        {
            result.Notes.Add("nginx is not installed (apt-get install nginx-light): its leg was skipped.");
        }

        if (options.PhasesDefaulted && !LlamaServerProcess.Configured)
        {
            result.Notes.Add($"the real-server phase was skipped: LLAMA_SERVER_BIN and LLAMA_MODEL are not set ({LlamaServerProcess.HowToConfigure}).");
        }

        foreach (var (name, value) in options.ProxyEnvironment)
        {
            result.Notes.Add($"both .NET proxies ran with {name}={value}.");
        }

        var outPath = Path.GetFullPath(options.Out);
        var logDirectory = Path.Combine(Path.GetDirectoryName(outPath)!, "logs");
        var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 50, TimeToFirstTokenMs = 0 });
        await using var run = new BenchRun(options, mock, logDirectory, result);
        foreach (var leg in legs)
        {
            result.Legs.Add(new LegResult(leg));
        }

        Console.WriteLine($"bench: legs {string.Join(", ", legs)}; open-files limit {limit} → at most {maxStreams} concurrent streams; logs in {logDirectory}");
        foreach (var leg in legs.Where(l => l != LegNames.Direct))
        {
            run._proxies[leg] = await ProxyProcess.StartAsync(leg, mock.BaseAddress, logDirectory, options.NginxWorkers, options.ProxyEnvironment);
        }

        if (options.Phases.Contains("first-token"))
        {
            await run.PhaseAsync("first token", "all", run.FirstTokenAsync);
        }

        foreach (var leg in options.Phases.Contains("cancel") ? result.Legs : [])
        {
            await run.PhaseAsync("client drop", leg.Leg, () => run.CancellationAsync(leg, supersede: false));
            if (leg.Leg == LegNames.Gateway)
            {
                await run.PhaseAsync("supersede", leg.Leg, () => run.CancellationAsync(leg, supersede: true));
            }
        }

        // An unmeasured round first (the first workload through each proxy): the figure is for a proxy
        // whose streaming path is compiled, not for its first seconds.
        foreach (var leg in options.Phases.Contains("throughput") && !options.Smoke ? result.Legs.Where(l => l.Leg != LegNames.Direct) : [])
        {
            var (streams, rate) = options.Throughput[0];
            foreach (var api in options.ThroughputApis)
            {
                await run.PhaseAsync("throughput warm-up (not measured)", leg.Leg, () => run.ThroughputAsync(leg, api, Math.Min(streams, maxStreams), rate, record: false));
            }
        }

        for (var round = 0; options.Phases.Contains("throughput") && round < options.ThroughputRounds; round++)
        {
            // Legs take turns within a round, in reverse order every other round; direct (no proxy,
            // no CPU figure) only in the first.
            var order = round % 2 == 0 ? result.Legs : Enumerable.Reverse(result.Legs).ToList();
            foreach (var leg in order.Where(l => round == 0 || l.Leg != LegNames.Direct))
            {
                foreach (var api in options.ThroughputApis)
                {
                    foreach (var (streams, rate) in options.Throughput)
                    {
                        var label = $"throughput round {round + 1}/{options.ThroughputRounds}";
                        await run.PhaseAsync(label, leg.Leg, () => run.ThroughputAsync(leg, api, Math.Min(streams, maxStreams), rate));
                    }
                }
            }
        }

        foreach (var leg in result.Legs)
        {
            foreach (var ((api, streams, rate), samples) in leg.ThroughputSamples)
            {
                leg.Throughput.Add(ThroughputFigures.Sum(api, streams, rate, samples));
            }
        }

        // One fresh proxy at a time from here: idle proxies hold pooled upstream connections, whose
        // other ends are descriptors in this process.
        foreach (var leg in legs)
        {
            await run.StopProxyAsync(leg);
        }

        foreach (var leg in options.Phases.Contains("memory") ? result.Legs : [])
        {
            await run.PhaseAsync("memory", leg.Leg, async () =>
            {
                await run.RestartProxyAsync(leg.Leg);
                await run.MemoryAsync(leg, maxStreams);
                await run.MassAbortAsync(leg, maxStreams);
            });
            await run.StopProxyAsync(leg.Leg);
        }

        if (options.Phases.Contains("real-server"))
        {
            await run.PhaseAsync("real server", "all", run.RealServerAsync);
        }

        result.DurationSeconds = clock.Elapsed.TotalSeconds;
        Targets.Evaluate(result, options);
        var table = Table.Render(result);
        Console.WriteLine();
        Console.WriteLine(table);
        Directory.CreateDirectory(Path.GetDirectoryName(outPath)!);
        await File.WriteAllTextAsync(outPath, Json.Serialize(result));
        await File.WriteAllTextAsync(Path.ChangeExtension(outPath, ".txt"), table);
        Console.WriteLine($"bench: wrote {outPath} in {clock.Elapsed.TotalSeconds:F0} s");
        return 0;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var proxy in _proxies.Values)
        {
            await proxy.DisposeAsync();
        }

        await _mock.DisposeAsync();
    }

    /// <summary>Runs a phase; a failure is written down and the run goes on with the next one.</summary>
    private async Task PhaseAsync(string phase, string leg, Func<Task> body)
    {
        try
        {
            await body();
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            _result.Notes.Add($"{phase} via {leg} failed: {ex.GetType().Name}: {ex.Message}");
            Console.WriteLine($"bench: {phase} via {leg} FAILED: {ex}");
        }
    }

    private IPEndPoint Target(string leg) => leg == LegNames.Direct ? MockEndPoint : _proxies[leg].EndPoint;

    private ProxyProcess? Proxy(string leg) => _proxies.GetValueOrDefault(leg);

    private async Task RestartProxyAsync(string leg)
    {
        await StopProxyAsync(leg);
        if (leg != LegNames.Direct)
        {
            _proxies[leg] = await ProxyProcess.StartAsync(leg, _mock.BaseAddress, _logDirectory, _options.NginxWorkers, _options.ProxyEnvironment);
        }
    }

    private async Task StopProxyAsync(string leg)
    {
        if (_proxies.Remove(leg, out var proxy))
        {
            await proxy.DisposeAsync();
        }
    }

    /// <summary>Time from sending a request to its first token, over warm keep-alive connections,
    /// legs interleaved so drift hits them alike; the hop is a leg's percentile minus direct's.</summary>
    private async Task FirstTokenAsync()
    {
        Console.WriteLine("bench: first token");
        var clients = _result.Legs.ToDictionary(l => l.Leg, l => new HttpClient(new SocketsHttpHandler { UseProxy = false })
        {
            BaseAddress = new Uri($"http://{Target(l.Leg)}/"),
        });
        var samples = _result.Legs.ToDictionary(l => l.Leg, _ => new List<double>());
        const int Warmup = 10;
        for (var i = 0; i < Warmup + _options.FirstTokenSamples; i++)
        {
            for (var j = 0; j < _result.Legs.Count; j++)
            {
                var leg = _result.Legs[(i + j) % _result.Legs.Count].Leg;
                var ms = await FirstTokenOnceAsync(clients[leg], $"ft-{leg}-{i}");
                if (i >= Warmup)
                {
                    samples[leg].Add(ms);
                }
            }
        }

        foreach (var client in clients.Values)
        {
            client.Dispose();
        }

        var direct = Percentiles.Of(samples.GetValueOrDefault(LegNames.Direct) ?? []);
        foreach (var leg in _result.Legs)
        {
            leg.FirstTokenMs = Percentiles.Of(samples[leg.Leg]);
            if (direct is not null && leg.FirstTokenMs is { } own && leg.Leg != LegNames.Direct)
            {
                leg.FirstTokenHopP50Ms = own.P50 - direct.P50;
                leg.FirstTokenHopP99Ms = own.P99 - direct.P99;
            }
        }
    }

    private static async Task<double> FirstTokenOnceAsync(HttpClient client, string sessionId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("""{"model":"mock-1","stream":true,"max_tokens":1,"messages":[{"role":"user","content":"bench"}]}""",
                Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        request.Headers.Add("X-Session-Id", sessionId);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", StreamRequest.TenantCredential(sessionId));
        request.Headers.Add("X-Mock-Completion-Tokens", "1");
        request.Headers.Add("X-Mock-Ttft-Ms", "0");
        var started = Stopwatch.GetTimestamp();
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await using var body = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[4096];
        var events = 0;
        byte last = 0;
        var firstTokenMs = double.NaN;
        while (await body.ReadAsync(buffer) is var read and > 0)
        {
            var span = buffer.AsSpan(0, read);
            events += (last == (byte)'\n' && span[0] == (byte)'\n' ? 1 : 0) + Count(span);
            last = span[^1];
            if (events >= 2 && double.IsNaN(firstTokenMs))
            {
                firstTokenMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds; // role chunk + first token
            }
        }

        return firstTokenMs;

        static int Count(ReadOnlySpan<byte> bytes)
        {
            var n = 0;
            for (var at = bytes.IndexOf("\n\n"u8); at >= 0; at = bytes.IndexOf("\n\n"u8))
            {
                n++;
                bytes = bytes[(at + 2)..];
            }

            return n;
        }
    }

    /// <summary>
    /// One stream at a time: once it is flowing (and after a random part of a token interval, so the
    /// cancel lands anywhere on the token schedule), the client vanishes or a newer request with the
    /// same session key is sent. Latency is from that moment to the mock's ledger recording the
    /// upstream request's end, both on the wall clock of this process; wasted tokens are those the
    /// ledger counted after that moment.
    /// </summary>
    private async Task CancellationAsync(LegResult leg, bool supersede)
    {
        var samples = supersede ? _options.SupersedeSamples : _options.DropSamples;
        Console.WriteLine($"bench: {(supersede ? "supersede" : "client drop")} via {leg.Leg} ×{samples}");
        var target = Target(leg.Leg);
        var latencies = new List<double>();
        var wasted = new List<double>();
        var rate = _options.CancelTokensPerSecond;
        var intervalMs = 1000 / rate;
        for (var i = 0; i < samples; i++)
        {
            Ledger.Clear();
            var sessionId = $"{(supersede ? "sup" : "drop")}-{leg.Leg}-{i}";
            var request = new StreamRequest(sessionId, rate, (int)Math.Max(100, rate * 30));
            using var client = new StreamClient(request);
            using var newer = supersede ? new StreamClient(new StreamRequest(sessionId, 1000, 1)) : null;
            try
            {
                await client.ConnectAsync(target, CancellationToken.None);
                client.Send(request.ToBytes(target));
                if (!await client.WaitForEventsAsync(3).WaitAsync(StepTimeout))
                {
                    leg.CancelFailures++;
                    continue;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(_random.NextDouble() * intervalMs));
                if (newer is not null)
                {
                    await newer.ConnectAsync(target, CancellationToken.None);
                }

                var newerBytes = newer?.Request.ToBytes(target);
                var before = Ledger.Snapshot().First(e => e.SessionId == sessionId).TokensSent;
                var decidedAt = DateTimeOffset.UtcNow;
                if (newer is not null)
                {
                    newer.Send(newerBytes!);
                }
                else
                {
                    client.Drop();
                }

                var entries = await Ledger.WaitForAsync(s => s.FirstOrDefault(e => e.SessionId == sessionId)?.EndedAt is not null, StepTimeout);
                var old = entries.First(e => e.SessionId == sessionId);
                if (old.Completed)
                {
                    leg.CancelFailures++;
                    continue;
                }

                latencies.Add((old.EndedAt!.Value - decidedAt).TotalMilliseconds);
                wasted.Add(old.TokensSent - before);
                if (newer is not null)
                {
                    await Task.WhenAll(client.Completion, newer.Completion).WaitAsync(StepTimeout);
                }
            }
            catch (Exception ex) when (ex is TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                leg.CancelFailures++;
            }
        }

        if (supersede)
        {
            leg.SupersedeMs = Percentiles.Of(latencies);
            leg.SupersedeWastedTokens = wasted.Count > 0 ? wasted.Average() : null;
        }
        else
        {
            leg.ClientDropMs = Percentiles.Of(latencies);
            leg.ClientDropWastedTokens = wasted.Count > 0 ? wasted.Average() : null;
        }
    }

    /// <summary>
    /// Against a real llama-server, started once for the phase: each leg (direct, or a fresh proxy whose
    /// upstream is llama-server) streams a long answer, one at a time; once 8 content tokens arrived the
    /// client closes its socket (the cancel decision). When the server says no request is processing
    /// any more, the growth of its own generated-token count is what it made for that request; minus
    /// the tokens the client had received, that is what it generated after the cancel decision.
    /// </summary>
    private async Task RealServerAsync()
    {
        await using var server = await LlamaServerProcess.StartAsync(_logDirectory);
        Console.WriteLine($"bench: real server llama-server at {server.BaseAddress}, {_options.RealServerRounds} rounds per leg");
        _result.Notes.Add($"real server: llama-server ({Environment.GetEnvironmentVariable(LlamaServerProcess.BinaryVariable)}) with " +
            $"{Path.GetFileName(Environment.GetEnvironmentVariable(LlamaServerProcess.ModelVariable))}, -t 1 -np 2, " +
            $"max_tokens {RealServerMaxTokens}, drop after {RealServerTokensBeforeDrop} content tokens, one stream at a time.");
        foreach (var leg in _result.Legs)
        {
            await PhaseAsync("real server", leg.Leg, async () =>
            {
                await using var proxy = leg.Leg == LegNames.Direct
                    ? null
                    : await ProxyProcess.StartAsync(leg.Leg, server.BaseAddress, _logDirectory, _options.NginxWorkers, _options.ProxyEnvironment);
                await RealServerLegAsync(leg, server, proxy?.EndPoint ?? server.EndPoint);
            });
        }
    }

    private const int RealServerMaxTokens = 1500;
    private const int RealServerTokensBeforeDrop = 8;

    private async Task RealServerLegAsync(LegResult leg, LlamaServerProcess server, IPEndPoint target)
    {
        Console.WriteLine($"bench: real server via {leg.Leg} ×{_options.RealServerRounds}");
        var after = new List<double>();
        var generated = new List<double>();

        // One unmeasured round first: the figure is for a leg whose streaming and cancel paths are
        // compiled, not for a proxy's first request.
        await RealServerRoundAsync(server, target, $"real-{leg.Leg}-warm-up");
        for (var i = 0; i < _options.RealServerRounds; i++)
        {
            try
            {
                if (await RealServerRoundAsync(server, target, $"real-{leg.Leg}-{i}") is { } round)
                {
                    generated.Add(round.Generated);
                    after.Add(round.Generated - round.Received);
                }
                else
                {
                    leg.RealServerFailures++;
                }
            }
            catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException or TimeoutException
                                           or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
            {
                Console.WriteLine($"bench: real server via {leg.Leg}, round {i + 1}: {ex.GetType().Name}: {ex.Message}");
                leg.RealServerFailures++;
            }
        }

        leg.RealServerTokensAfterCancel = Percentiles.Of(after);
        leg.RealServerTokensGenerated = generated.Count > 0 ? generated.Average() : null;
    }

    /// <summary>One cancelled stream: the tokens the client had received when it dropped, and the
    /// tokens the server generated for the request (null when the answer ended before the drop).</summary>
    private static async Task<(int Received, double Generated)?> RealServerRoundAsync(LlamaServerProcess server, IPEndPoint target, string sessionId)
    {
        if (!await server.WaitIdleAsync(StepTimeout))
        {
            throw new TimeoutException("llama-server still had a request processing before the round");
        }

        var before = await server.TokensPredictedAsync();
        System.Net.Sockets.Socket? socket = null;
        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            // The client's own socket, so dropping it is closing it, as when a tab or process dies.
            ConnectCallback = async (context, cancellationToken) =>
            {
                var s = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream,
                    System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                await s.ConnectAsync(target, cancellationToken);
                socket = s;
                return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
            },
        };
        using var client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
        using var timeout = new CancellationTokenSource(StepTimeout);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri($"http://{target}/v1/chat/completions"))
        {
            Content = new StringContent(
                $$"""{"model":"tiny","stream":true,"max_tokens":{{RealServerMaxTokens}},"messages":[{"role":"user","content":"tell me a long story {{sessionId}}"}]}""",
                Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        request.Headers.Add("X-Session-Id", sessionId);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", StreamRequest.TenantCredential(sessionId));
        var received = 0;
        using (var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token))
        {
            response.EnsureSuccessStatusCode();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(timeout.Token));
            while (received < RealServerTokensBeforeDrop && await reader.ReadLineAsync(timeout.Token) is { } line)
            {
                if (line.StartsWith("data: {", StringComparison.Ordinal) && HasContent(line.AsMemory(6)))
                {
                    received++;
                }
            }

            if (received < RealServerTokensBeforeDrop)
            {
                return null;
            }

            socket!.Dispose(); // the cancel decision: the client is gone
        }

        if (!await server.WaitIdleAsync(StepTimeout))
        {
            throw new TimeoutException($"llama-server was still processing {StepTimeout.TotalSeconds:F0} s after the client dropped");
        }

        return (received, await server.TokensPredictedAsync() - before);

        static bool HasContent(ReadOnlyMemory<char> json)
        {
            using var document = System.Text.Json.JsonDocument.Parse(json);
            return document.RootElement.TryGetProperty("choices", out var choices)
                && choices.ValueKind == System.Text.Json.JsonValueKind.Array
                && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("delta", out var delta)
                && delta.TryGetProperty("content", out var content)
                && content.ValueKind == System.Text.Json.JsonValueKind.String
                && content.GetString()!.Length > 0;
        }
    }

    /// <summary>
    /// <paramref name="streams"/> streams at <paramref name="rate"/> tokens/s, started evenly over the
    /// ramp so they do not tick in lock-step; after a warm-up, the proxy's CPU time over a window is
    /// divided by the events the clients received in it. Every stream then runs to its end and is
    /// checked for missing events.
    /// </summary>
    private async Task ThroughputAsync(LegResult leg, string api, int streams, double rate, bool record = true)
    {
        Console.WriteLine($"bench: throughput via {leg.Leg}, {api}, {streams} streams × {rate} tokens/s");
        Ledger.Clear();
        var target = Target(leg.Leg);
        var proxy = Proxy(leg.Leg);
        var tally = new EventTally();
        var ramp = _options.ThroughputRamp;
        var tokens = (int)Math.Ceiling(rate * (ramp + _options.ThroughputWarmup + _options.ThroughputWindow + TimeSpan.FromSeconds(1)).TotalSeconds);
        var clients = new List<StreamClient>(streams);
        var opening = new List<Task>(streams);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < streams; i++)
        {
            var due = ramp * i / streams;
            if (due > clock.Elapsed)
            {
                await Task.Delay(due - clock.Elapsed);
            }

            var client = new StreamClient(new StreamRequest($"tp-{leg.Leg}-{i}", rate, tokens, Api: api), tally);
            clients.Add(client);
            opening.Add(OpenAsync(client, target));
        }

        await DelayUntil(clock, ramp + _options.ThroughputWarmup);
        var events0 = tally.Events;
        var cpu0 = proxy?.CpuTicks() ?? 0;
        var window = Stopwatch.StartNew();
        await Task.Delay(_options.ThroughputWindow);
        var events1 = tally.Events;
        var cpu1 = proxy?.CpuTicks() ?? 0;
        var seconds = window.Elapsed.TotalSeconds;

        await Task.WhenAll(opening);
        await WhenEnded(clients, TimeSpan.FromSeconds(tokens / rate) + TimeSpan.FromSeconds(30));
        Account(leg, clients);
        if (!record)
        {
            return;
        }

        var key = (api, streams, rate);
        if (!leg.ThroughputSamples.TryGetValue(key, out var samples))
        {
            leg.ThroughputSamples[key] = samples = [];
        }

        samples.Add(new ThroughputSample(events1 - events0, seconds, proxy is null ? null : cpu1 - cpu0));
    }

    /// <summary>
    /// A fresh proxy process: its idle resident memory, then more and more concurrent slow streams,
    /// resident memory above idle divided by the streams open at each level. The streams all end
    /// together at the end of the hold and are checked for missing events.
    /// </summary>
    private async Task MemoryAsync(LegResult leg, int maxStreams)
    {
        var target = Target(leg.Leg);
        var proxy = Proxy(leg.Leg);
        var rate = _options.MemoryTokensPerSecond;
        Console.WriteLine($"bench: memory via {leg.Leg}, levels {string.Join(",", _options.MemoryLevels)}");
        Ledger.Clear();
        var warm = await StreamClient.OpenManyAsync(target, Enumerable.Range(0, 20).Select(i => new StreamRequest($"warm-{leg.Leg}-{i}", 1000, 5)), 4, null, CancellationToken.None);
        await WhenEnded(warm, StepTimeout);
        await Task.Delay(_options.Smoke ? TimeSpan.FromSeconds(0.5) : TimeSpan.FromSeconds(3));
        var idle = proxy?.RssBytes() ?? 0;
        leg.IdleRssMb = proxy is null ? null : idle / 1048576.0;

        var hold = Stopwatch.StartNew();
        var all = new List<StreamClient>();
        var n = 0;
        foreach (var requested in _options.MemoryLevels)
        {
            var level = Math.Min(requested, maxStreams);
            if (level < requested)
            {
                _result.Notes.Add($"{leg.Leg}: memory level {requested} ran at {level} streams (open-files limit {_result.OpenFilesLimit}).");
            }

            var add = Math.Max(0, level - all.Count);
            IEnumerable<StreamRequest> Requests()
            {
                for (var i = 0; i < add; i++)
                {
                    var left = _options.MemoryHold - hold.Elapsed;
                    yield return new StreamRequest($"mem-{leg.Leg}-{n++}", rate, Math.Max(3, (int)(rate * left.TotalSeconds)));
                }
            }

            all.AddRange(await StreamClient.OpenManyAsync(target, Requests(), _options.ConnectConcurrency, null, CancellationToken.None));
            await Task.Delay(_options.Settle);
            var open = all.Count(c => !c.Completion.IsCompleted);
            var rss = proxy?.RssBytes() ?? 0;
            leg.Memory.Add(new MemoryFigure(requested, open, rss / 1048576.0, proxy is null || open == 0 ? null : (rss - idle) / 1024.0 / open));
            Console.WriteLine($"bench:   {open} streams open, proxy RSS {rss / 1048576.0:F1} MB");
        }

        await WhenEnded(all, _options.MemoryHold - hold.Elapsed + TimeSpan.FromSeconds(60));
        Account(leg, all);
    }

    /// <summary>Many streaming clients vanish at once (their sockets closed in one tight loop); the
    /// mock's ledger says how many upstream requests are still open 100 ms and 500 ms after the last.</summary>
    private async Task MassAbortAsync(LegResult leg, int maxStreams)
    {
        var count = Math.Min(_options.MassAbortStreams, maxStreams);
        if (count < _options.MassAbortStreams)
        {
            _result.Notes.Add($"{leg.Leg}: mass abort ran with {count} clients (open-files limit {_result.OpenFilesLimit}).");
        }

        var target = Target(leg.Leg);

        // A small unmeasured abort first: a proxy that has been up for a while has compiled its
        // client-drop path; the figure is for that proxy, not for its first minute.
        var warm = Math.Max(1, count / 20);
        Console.WriteLine($"bench: mass abort via {leg.Leg}, {warm} clients to warm up, then {count}");
        Ledger.Clear();
        var warming = await OpenSlowStreamsAsync(target, $"abort-warm-{leg.Leg}", warm);
        foreach (var client in warming)
        {
            client.Drop();
        }

        await WhenEnded(warming, StepTimeout);
        await Ledger.WaitForAsync(entries => entries.All(e => e.EndedAt is not null), StepTimeout);

        Ledger.Clear();
        var clients = await OpenSlowStreamsAsync(target, $"abort-{leg.Leg}", count);
        var flowing = clients.Count(c => c.Events > 0);
        leg.FailedStreams += count - flowing;
        await Task.Delay(_options.Settle);

        var proxy = Proxy(leg.Leg);
        var cpu0 = proxy?.CpuTicks() ?? 0;
        var loop = Stopwatch.StartNew();
        foreach (var client in clients)
        {
            client.Drop();
        }

        var closeLoopMs = loop.Elapsed.TotalMilliseconds;
        var gone = Stopwatch.StartNew();
        int? open100 = null, open500 = null;
        double? allClosed = null;
        while (gone.Elapsed < TimeSpan.FromSeconds(30) && (allClosed is null || open500 is null))
        {
            var open = Ledger.Snapshot().Count(e => e.EndedAt is null);
            var at = gone.Elapsed;
            if (open == 0 && allClosed is null)
            {
                allClosed = at.TotalMilliseconds;
            }

            if (at >= TimeSpan.FromMilliseconds(100))
            {
                open100 ??= open;
            }

            if (at >= TimeSpan.FromMilliseconds(500))
            {
                open500 ??= open;
            }

            var next = open100 is null ? TimeSpan.FromMilliseconds(100) : open500 is null ? TimeSpan.FromMilliseconds(500) : TimeSpan.MaxValue;
            var step = TimeSpan.FromMilliseconds(20);
            var wait = next - gone.Elapsed < step ? next - gone.Elapsed : step;
            await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
        }

        // CPU from the first close until the proxy is idle again (its bookkeeping after the upstream
        // closes included): what the aborts cost it.
        var cpu1 = proxy is null ? 0 : await IdleCpuTicksAsync(proxy);
        Console.WriteLine($"bench: {leg.Leg} idle again {gone.Elapsed.TotalMilliseconds:F0} ms after the closes");
        double? cpuPerStream = proxy is null || allClosed is null || flowing == 0 ? null : (cpu1 - cpu0) / ProcessStats.TicksPerSecond * 1e6 / flowing;
        leg.MassAbort = new MassAbortFigure(flowing, open100 ?? -1, open500 ?? -1, allClosed, closeLoopMs, cpuPerStream);
        await WhenEnded(clients, StepTimeout);
    }

    /// <summary>Streams of one token per second that last an hour, <paramref name="count"/> of them.</summary>
    private Task<List<StreamClient>> OpenSlowStreamsAsync(IPEndPoint target, string prefix, int count) =>
        StreamClient.OpenManyAsync(
            target, Enumerable.Range(0, count).Select(i => new StreamRequest($"{prefix}-{i}", 1, 3600)), _options.ConnectConcurrency, null, CancellationToken.None);

    /// <summary>The proxy's CPU ticks once it has used at most one tick (10 ms) in 200 ms (at most 10 s).</summary>
    private static async Task<long> IdleCpuTicksAsync(ProxyProcess proxy)
    {
        var bound = Stopwatch.StartNew();
        var last = proxy.CpuTicks();
        while (bound.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200));
            var now = proxy.CpuTicks();
            if (now - last <= 1)
            {
                return now;
            }

            last = now;
        }

        return last;
    }

    private static async Task OpenAsync(StreamClient client, IPEndPoint target)
    {
        try
        {
            await client.ConnectAsync(target, CancellationToken.None);
            client.Send(client.Request.ToBytes(target));
        }
        catch (System.Net.Sockets.SocketException)
        {
            // Counted as missing events.
        }
    }

    private static void Account(LegResult leg, List<StreamClient> clients)
    {
        foreach (var client in clients)
        {
            leg.ChunksExpected += client.Request.ExpectedEvents;
            leg.ChunksLost += client.Missing;
            if (client.Status != 200 || client.Error is not null || !client.EndedByServer)
            {
                leg.FailedStreams++;
            }
        }
    }

    private static async Task WhenEnded(List<StreamClient> clients, TimeSpan timeout)
    {
        try
        {
            await Task.WhenAll(clients.Select(c => c.Completion)).WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            foreach (var client in clients)
            {
                client.Drop(); // the unfinished ones count as missing events
            }
        }
    }

    private static async Task DelayUntil(Stopwatch clock, TimeSpan at)
    {
        var left = at - clock.Elapsed;
        if (left > TimeSpan.Zero)
        {
            await Task.Delay(left);
        }
    }
}
