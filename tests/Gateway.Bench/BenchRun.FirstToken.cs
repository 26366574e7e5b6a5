using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Bench.Load;
using Gateway.Bench.Report;

namespace Gateway.Bench;

/// <summary>The first-token phase: the hop each leg adds before the first token.</summary>
internal sealed partial class BenchRun
{
    /// <summary>A prompt of 1,000,000 characters: the body is just under the mock's 1 MiB limit.</summary>
    private static readonly byte[] LargePromptBody = Encoding.UTF8.GetBytes(
        "{\"model\":\"mock-1\",\"stream\":true,\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 1_000_000) + "\"}]}");

    private static readonly byte[] SmallPromptBody = """{"model":"mock-1","stream":true,"max_tokens":1,"messages":[{"role":"user","content":"bench"}]}"""u8.ToArray();

    /// <summary>Time from sending a request to its first token, over warm keep-alive connections,
    /// legs interleaved so drift hits them alike; the hop is a leg's percentile minus direct's. Then
    /// the same with a 1 MB prompt, whose body streams through the proxy before the mock can answer.</summary>
    private async Task FirstTokenAsync()
    {
        Console.WriteLine("bench: first token");
        var clients = _result.Legs.ToDictionary(l => l.Leg, l => new HttpClient(new SocketsHttpHandler { UseProxy = false })
        {
            BaseAddress = new Uri($"http://{Target(l.Leg)}/"),
        });
        var samples = await InterleavedAsync(clients, _options.FirstTokenSamples, SmallPromptBody);
        var large = await InterleavedAsync(clients, _options.LargePromptSamples, LargePromptBody);
        foreach (var client in clients.Values)
        {
            client.Dispose();
        }

        var direct = Percentiles.Of(samples.GetValueOrDefault(LegNames.Direct) ?? []);
        foreach (var leg in _result.Legs)
        {
            leg.FirstTokenMs = Percentiles.Of(samples[leg.Leg]);
            leg.LargePromptFirstTokenMs = Percentiles.Of(large[leg.Leg]);
            if (direct is not null && leg.FirstTokenMs is { } own && leg.Leg != LegNames.Direct)
            {
                leg.FirstTokenHopP50Ms = own.P50 - direct.P50;
                leg.FirstTokenHopP99Ms = own.P99 - direct.P99;
            }
        }
    }

    private async Task<Dictionary<string, List<double>>> InterleavedAsync(Dictionary<string, HttpClient> clients, int count, byte[] body)
    {
        var samples = _result.Legs.ToDictionary(l => l.Leg, _ => new List<double>());
        const int Warmup = 10;
        for (var i = 0; i < Warmup + count; i++)
        {
            for (var j = 0; j < _result.Legs.Count; j++)
            {
                var leg = _result.Legs[(i + j) % _result.Legs.Count].Leg;
                var ms = await FirstTokenOnceAsync(clients[leg], $"ft{body.Length}-{leg}-{i}", body);
                if (i >= Warmup)
                {
                    samples[leg].Add(ms);
                }
            }
        }

        return samples;
    }

    private static async Task<double> FirstTokenOnceAsync(HttpClient client, string sessionId, byte[] body)
    {
        var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = content };
        request.Headers.Add("X-Session-Id", sessionId);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", StreamRequest.TenantCredential(sessionId));
        request.Headers.Add("X-Mock-Completion-Tokens", "1");
        request.Headers.Add("X-Mock-Ttft-Ms", "0");
        var started = Stopwatch.GetTimestamp();
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        await using var answer = await response.Content.ReadAsStreamAsync();
        var buffer = new byte[4096];
        var events = 0;
        byte last = 0;
        var firstTokenMs = double.NaN;
        while (await answer.ReadAsync(buffer) is var read and > 0)
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
}
