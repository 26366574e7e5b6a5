using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Bench.Proxies;
using MockLlm;

namespace Gateway.Bench;

/// <summary>
/// <c>--debounce</c>: what a debounce window adds to the first token. The shipped gateway in its own process
/// with two routes to the same in-process mock: <c>/plain/...</c> without a window and <c>/debounced/...</c>
/// with one (<c>SessionStreams.Debounce</c>). Sequential requests, alternating routes, each with a fresh session
/// key; reported: p50/p99 of time to first token without the window, and of (with the window − the window).
/// Equal figures mean the hop adds the window and nothing more.
/// </summary>
internal static class DebounceBench
{
    public const string Usage = "  --debounce [--rounds N] [--window-ms MS]   first-token cost of SessionStreams.Debounce (default 200 rounds, 100 ms)";

    public static async Task<int> RunAsync(string[] args)
    {
        var rounds = Option(args, "--rounds", 200);
        var windowMs = Option(args, "--window-ms", 100);
        var window = TimeSpan.FromMilliseconds(windowMs);
        var logs = Path.Combine(Path.GetTempPath(), "gateway-bench-debounce");
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 50, TimeToFirstTokenMs = 0 });
        var environment = new Dictionary<string, string>
        {
            ["ReverseProxy__Routes__plain__ClusterId"] = "llm",
            ["ReverseProxy__Routes__plain__Match__Path"] = "/plain/{**rest}",
            ["ReverseProxy__Routes__plain__Transforms__0__PathRemovePrefix"] = "/plain",
            ["ReverseProxy__Routes__plain__Metadata__SessionStreams"] = "true",
            ["ReverseProxy__Routes__debounced__ClusterId"] = "llm",
            ["ReverseProxy__Routes__debounced__Match__Path"] = "/debounced/{**rest}",
            ["ReverseProxy__Routes__debounced__Transforms__0__PathRemovePrefix"] = "/debounced",
            ["ReverseProxy__Routes__debounced__Metadata__SessionStreams"] = "true",
            ["ReverseProxy__Routes__debounced__Metadata__SessionStreams.Debounce"] = window.ToString("c", CultureInfo.InvariantCulture),
        };
        await using var gateway = await ProxyProcess.StartAsync(LegNames.Gateway, mock.BaseAddress, logs, "auto", environment);
        using var client = new HttpClient { BaseAddress = new Uri($"http://{gateway.EndPoint}/"), Timeout = TimeSpan.FromSeconds(30) };

        for (var i = 0; i < 20; i++) // warm-up, not measured: both routes compiled and connected
        {
            await FirstTokenAsync(client, "plain", $"warm-{i}");
            await FirstTokenAsync(client, "debounced", $"warm-d-{i}");
        }

        var plain = new List<double>(rounds);
        var debounced = new List<double>(rounds);
        for (var i = 0; i < rounds; i++)
        {
            plain.Add(await FirstTokenAsync(client, "plain", $"p-{i}"));
            debounced.Add(await FirstTokenAsync(client, "debounced", $"d-{i}") - windowMs);
        }

        Console.WriteLine($"debounce bench: {rounds} rounds, window {windowMs} ms, gateway pid {gateway.Pid}, mock 50 tok/s, no first-token delay");
        Console.WriteLine("                               p50 ms    p99 ms");
        Console.WriteLine($"ttft without debounce        {Percentile(plain, 0.50),8:F2}  {Percentile(plain, 0.99),8:F2}");
        Console.WriteLine($"ttft with debounce - window  {Percentile(debounced, 0.50),8:F2}  {Percentile(debounced, 0.99),8:F2}");
        return 0;
    }

    /// <summary>Milliseconds from sending a streaming chat request to its first <c>data:</c> line.</summary>
    private static async Task<double> FirstTokenAsync(HttpClient client, string route, string session)
    {
        var body = "{\"model\":\"mock-1\",\"stream\":true,\"max_tokens\":3,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
        using var request = new HttpRequestMessage(HttpMethod.Post, $"{route}/v1/chat/completions")
        {
            Content = new StringContent(body, Encoding.UTF8, new MediaTypeHeaderValue("application/json")),
        };
        request.Headers.Add("X-Session-Id", session);
        var started = Stopwatch.GetTimestamp();
        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        double? first = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (first is null && line.StartsWith("data:", StringComparison.Ordinal))
            {
                first = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            }
        }

        return first ?? throw new InvalidOperationException($"no data line on {route}");
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
    }

    private static int Option(string[] args, string name, int fallback)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length && int.TryParse(args[at + 1], CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;
    }
}
