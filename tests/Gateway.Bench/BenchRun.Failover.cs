using System.Net;
using System.Net.Sockets;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;

namespace Gateway.Bench;

/// <summary>The failover phase: what one failed attempt (a destination that refuses) adds to a request's first token.</summary>
internal sealed partial class BenchRun
{
    /// <summary>
    /// Two gateway processes in front of the mock: one as shipped, one whose cluster also has a destination where
    /// nothing listens, tried first (<c>FirstAlphabetical</c>) on every request with passive health off, so each
    /// request fails once and is resent. First token through each, interleaved request by request; the added
    /// latency is the failing-over gateway's percentile minus the other's.
    /// </summary>
    private async Task FailoverAsync()
    {
        var environment = new Dictionary<string, string>(_options.ProxyEnvironment)
        {
            ["ReverseProxy__Clusters__llm__LoadBalancingPolicy"] = "FirstAlphabetical",
            ["ReverseProxy__Clusters__llm__Destinations__a-down__Address"] = $"http://127.0.0.1:{ClosedPort()}/",
            ["ReverseProxy__Clusters__llm__HealthCheck__Passive__Enabled"] = "false",
            // Without affinity, which would keep the sessions whose first choice is the live destination away from the dead one.
            ["ReverseProxy__Routes__llm__Metadata__SessionStreams.Affinity"] = "false",
        };
        await using var plain = await ProxyProcess.StartAsync(LegNames.Gateway, _mock.BaseAddress, _logDirectory, _options.NginxWorkers, _options.ProxyEnvironment);
        await using var failing = await ProxyProcess.StartAsync(LegNames.Gateway, _mock.BaseAddress, Path.Combine(_logDirectory, "failover"), _options.NginxWorkers, environment);
        using var plainClient = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri($"http://{plain.EndPoint}/") };
        using var failingClient = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri($"http://{failing.EndPoint}/") };
        Console.WriteLine($"bench: failover, {_options.FirstTokenSamples} first tokens each way, one refused attempt before every failing-over one");

        List<double> plainMs = [], failingMs = [];
        const int Warmup = 10;
        for (var i = 0; i < Warmup + _options.FirstTokenSamples; i++)
        {
            // Alternate which goes first, so a slow moment of the machine falls on both alike.
            var first = i % 2 == 0;
            var a = await FirstTokenOnceAsync(first ? plainClient : failingClient, $"fo-{i}-a", SmallPromptBody);
            var b = await FirstTokenOnceAsync(first ? failingClient : plainClient, $"fo-{i}-b", SmallPromptBody);
            if (i >= Warmup)
            {
                (first ? plainMs : failingMs).Add(a);
                (first ? failingMs : plainMs).Add(b);
            }
        }

        // The gateway's own count: every request of the failing-over one was resent once.
        var metrics = await failingClient.GetStringAsync("metrics");
        var retries = (long)metrics.Split('\n')
            .Where(l => l.StartsWith("llm_gateway_upstream_retries_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
        var without = Percentiles.Of(plainMs)!;
        var with = Percentiles.Of(failingMs)!;
        _result.Failover = new FailoverFigure(without, with, with.P50 - without.P50, with.P99 - without.P99, retries, Warmup + _options.FirstTokenSamples);
    }

    private static int ClosedPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port; // bound, never listening: connections are refused
    }
}
