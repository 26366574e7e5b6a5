using System.Diagnostics;
using System.Globalization;
using System.Text;
using Gateway.Bench.Report;

namespace Gateway.Bench;

/// <summary>The resume phase (gateway only, its <c>/resume/</c> route has <c>SessionStreams.Resume</c>): how soon a
/// reconnect with <c>Last-Event-ID</c> gets its first replayed byte, and what a detached stream holds in memory.</summary>
internal sealed partial class BenchRun
{
    private async Task ResumeAsync(LegResult leg)
    {
        if (leg.Leg != LegNames.Gateway || Proxy(leg.Leg) is not { } proxy)
        {
            return;
        }

        var target = Target(leg.Leg);
        var samples = _options.Smoke ? 5 : _options.ResumeSamples;
        var detached = _options.Smoke ? 50 : _options.ResumeDetachedStreams;
        Console.WriteLine($"bench: resume via {leg.Leg}, {samples} reconnects, {detached} detached streams");
        var baseAddress = new Uri($"http://{target}/resume/");
        var replay = new List<double>();
        var failures = 0;
        for (var i = 0; i < samples; i++)
        {
            Ledger.Clear();
            var session = $"resume-{i}";
            var lastId = await OpenAndDropAsync(baseAddress, session, tokensPerSecond: 50, tokens: 400);
            if (lastId is null)
            {
                failures++;
                continue;
            }

            // Events after the client's last id are kept by now: the replay has bytes to send at once.
            if (!await Ledger.WaitForAsync(l => l.Any(e => e.SessionId == session && e.TokensSent >= 8), StepTimeout).ContinueWith(t => t.IsCompletedSuccessfully))
            {
                failures++;
                continue;
            }

            using var http = NewResumeClient(baseAddress);
            using var resume = ResumeRequest(session, lastId);
            var clock = Stopwatch.StartNew();
            using var response = await http.SendAsync(resume, HttpCompletionOption.ResponseHeadersRead);
            await using var body = await response.Content.ReadAsStreamAsync();
            var first = await body.ReadAsync(new byte[1]);
            clock.Stop();
            if ((int)response.StatusCode == 200 && first == 1)
            {
                replay.Add(clock.Elapsed.TotalMilliseconds);
            }
            else
            {
                failures++;
            }

            await StopSessionAsync(http, session);
        }

        // Memory: many streams whose clients went away, generating slowly for nobody, against the idle process.
        await Task.Delay(_options.Smoke ? TimeSpan.FromSeconds(0.5) : TimeSpan.FromSeconds(2));
        var idle = proxy.RssBytes();
        var sessions = Enumerable.Range(0, detached).Select(i => $"detached-{i}").ToList();
        var opened = 0;
        await Parallel.ForEachAsync(sessions, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (session, _) =>
        {
            if (await OpenAndDropAsync(baseAddress, session, tokensPerSecond: 5, tokens: 2000) is not null)
            {
                Interlocked.Increment(ref opened);
            }
        });
        await Task.Delay(_options.Settle);
        var rss = proxy.RssBytes();
        using (var http = NewResumeClient(baseAddress))
        {
            await Parallel.ForEachAsync(sessions, new ParallelOptions { MaxDegreeOfParallelism = 32 }, async (session, _) => await StopSessionAsync(http, session));
        }

        leg.Resume = new ResumeFigure(Percentiles.Of(replay), failures, opened, opened == 0 ? null : (rss - idle) / 1024.0 / opened);
        Console.WriteLine($"bench:   replay first byte p50 {leg.Resume.ReplayFirstByteMs?.P50:F2} ms; {opened} detached streams, {leg.Resume.KbPerDetachedStream:F1} KB each");
    }

    /// <summary>Opens a stream, reads three events, and drops the connection; returns the last event's id.</summary>
    private static async Task<string?> OpenAndDropAsync(Uri baseAddress, string session, int tokensPerSecond, int tokens)
    {
        using var http = NewResumeClient(baseAddress);
        using var request = ChatRequest(session, tokensPerSecond, tokens);
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if ((int)response.StatusCode != 200)
        {
            return null;
        }

        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8);
        string? lastId = null;
        var events = 0;
        while (events < 3 && await reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                lastId = line[4..];
            }
            else if (line.Length == 0)
            {
                events++;
            }
        }

        return lastId; // disposing the client here closes its connection: the stream detaches
    }

    private static HttpClient NewResumeClient(Uri baseAddress) =>
        new(new SocketsHttpHandler { MaxResponseDrainSize = 0, PooledConnectionLifetime = TimeSpan.FromMinutes(1) }) { BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(30) };

    private static HttpRequestMessage ChatRequest(string session, int tokensPerSecond, int tokens)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent("""{"model":"bench","stream":true,"max_tokens":4096,"messages":[{"role":"user","content":"a long answer"}]}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Session-Id", session);
        request.Headers.Add("X-Mock-Tokens-Per-Second", tokensPerSecond.ToString(CultureInfo.InvariantCulture));
        request.Headers.Add("X-Mock-Completion-Tokens", tokens.ToString(CultureInfo.InvariantCulture));
        return request;
    }

    private static HttpRequestMessage ResumeRequest(string session, string lastEventId)
    {
        var request = ChatRequest(session, 50, 400);
        request.Headers.Add("Last-Event-ID", lastEventId);
        return request;
    }

    private static async Task StopSessionAsync(HttpClient http, string session)
    {
        using var stop = await http.PostAsync(new Uri($"/v1/sessions/{session}/cancel", UriKind.Relative), null);
    }
}
