using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Bench.Load;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;
using Gateway.Bench.Upstream;

namespace Gateway.Bench;

/// <summary>The real-server phase: tokens a real llama-server generates after the client dropped.</summary>
internal sealed partial class BenchRun
{
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
    private const int RealServerWarmUpRounds = 3;

    private async Task RealServerLegAsync(LegResult leg, LlamaServerProcess server, IPEndPoint target)
    {
        Console.WriteLine($"bench: real server via {leg.Leg} ×{_options.RealServerRounds}");
        var after = new List<double>();
        var generated = new List<double>();

        // Unmeasured rounds first: the figure is for a leg whose streaming and cancel paths are compiled,
        // not for a proxy's first requests (each proxy is restarted for this phase).
        for (var i = 0; i < RealServerWarmUpRounds; i++)
        {
            await RealServerRoundAsync(server, target, $"real-{leg.Leg}-warm-up-{i}");
        }

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
        leg.RealServerTokensAfterCancelByRound = after;
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
}
