using System.Diagnostics;
using System.Globalization;
using Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>
/// Cross-replica supersede latency on loopback: a stream runs on replica A, a newer request for the
/// same session goes to replica B, and we time from sending B's request to (1) A cancelling its lease
/// and (2) the mock model server seeing A's upstream request end (its ledger's EndedAt). Prints
/// p50/p99 and asserts no timing: in the suite it runs 10 rounds and checks every one was a real
/// cross-replica supersede; for the figure, run 300:
/// <code>GATEWAY_REDIS_BENCH_N=300 dotnet test tests/Gateway.Tests -c Release --filter Category=RedisBench --logger "console;verbosity=detailed"</code>
/// </summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, "RedisBench")]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class CrossReplicaLatencyBench(ITestOutputHelper output)
{
    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), CultureInfo.InvariantCulture, out var value) ? value : fallback;

    [Fact]
    public async Task CrossReplicaSupersede_Latency_P50P99()
    {
        await using var replicas = await Replicas.StartAsync();
        await MeasureAsync(replicas, Setting("GATEWAY_REDIS_BENCH_N", 10), storm: null);
    }

    /// <summary>
    /// The same during a storm of explicit stops for sessions that do not exist, sent to both replicas
    /// while A holds many leases: what a stop costs the ordered channel reader every supersede waits
    /// behind. The suite runs it small; the audit's figure (400 stops against thousands of leases):
    /// <code>GATEWAY_REDIS_BENCH_N=100 GATEWAY_REDIS_BENCH_LEASES=2000 GATEWAY_REDIS_BENCH_STOPS=400 dotnet test tests/Gateway.Tests -c Release --filter Category=RedisBench --logger "console;verbosity=detailed"</code>
    /// (Each lease is three sockets in this one test process; 2,000 stays under a 20,000 descriptor limit.)
    /// </summary>
    [Fact]
    public async Task CrossReplicaSupersede_DuringAStopStorm_Latency_P50P99()
    {
        await using var replicas = await Replicas.StartAsync();
        var trickle = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "1", ["X-Mock-Completion-Tokens"] = "100000" };
        var held = new List<HttpResponseMessage>();
        try
        {
            var leases = Setting("GATEWAY_REDIS_BENCH_LEASES", 50);
            for (var i = 0; i < leases; i += 10)
            {
                held.AddRange(await Task.WhenAll(Enumerable.Range(i, Math.Min(10, leases - i)).Select(n => StreamReading.SendAsync(replicas.A.Client,
                    StreamReading.ChatRequest("/v1/chat/completions", "x", $"held-{n}", maxTokens: 100000, authorization: $"Bearer holder-{n}", headers: trickle)))));
            }

            var stops = Setting("GATEWAY_REDIS_BENCH_STOPS", 100);
            var round = 0;
            await MeasureAsync(replicas, Setting("GATEWAY_REDIS_BENCH_N", 3), storm: () =>
            {
                var r = Interlocked.Increment(ref round);
                return Task.WhenAll(Enumerable.Range(0, stops).Select(async i =>
                {
                    // One credential per stop, so no bucket refuses any of them: each reaches Redis.
                    using var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/nothing-{r}-{i}/cancel");
                    stop.Headers.TryAddWithoutValidation("Authorization", $"Bearer storm-{r}-{i}");
                    using var response = await (i % 2 == 0 ? replicas.A : replicas.B).Client.SendAsync(stop);
                    Assert.Equal(404, (int)response.StatusCode);
                }));
            });
            output.WriteLine($"  (during {stops} stops per round, sent to both replicas, with {leases} leases held on A)");
        }
        finally
        {
            foreach (var response in held)
            {
                response.Dispose();
            }
        }
    }

    private async Task MeasureAsync(Replicas replicas, int iterations, Func<Task>? storm)
    {
        // A fast token rate, so the mock notices the abort within a fraction of a millisecond.
        var fast = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "2000", ["X-Mock-Completion-Tokens"] = "1000000", ["X-Mock-Ttft-Ms"] = "0" };
        var cancelled = new List<double>();
        var upstreamClosed = new List<double>();
        for (var i = -Math.Min(20, iterations); i < iterations; i++) // the first rounds warm up connections and JIT
        {
            var session = $"bench-{i}";
            using var old = await StreamReading.SendAsync(replicas.A.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "long", session, maxTokens: 1_000_000, headers: fast));
            await replicas.WaitForEntryAsync(session, e => e.TokensSent >= 1);
            var lease = replicas.A.Host.Registry.Snapshot().Single(l => l.Key.Value.EndsWith("\n" + session, StringComparison.Ordinal));
            var cancelledAt = 0L;
            using var registration = lease.Token.Register(() => cancelledAt = Stopwatch.GetTimestamp());

            var stopping = storm?.Invoke() ?? Task.CompletedTask;
            var sentAt = Stopwatch.GetTimestamp();
            var sentWall = DateTimeOffset.UtcNow;
            var newer = await StreamReading.SendAndReadAsync(replicas.B.Client,
                StreamReading.ChatRequest("/v1/chat/completions", "short", session, maxTokens: 1));
            // Checked before reading the old stream: if the newer request lost, the old one would run for
            // minutes (a million tokens), so that read is bounded too.
            Assert.True(newer.StatusCode == 200 && newer.DataEvents.Count > 0 && newer.DataEvents[^1] == "[DONE]",
                $"round {i}: the newer request on B answered {newer.StatusCode}: {string.Join(" | ", newer.Lines.Take(5))}");
            using (var deadline = new CancellationTokenSource(Wait.Timeout))
            {
                await StreamReading.ReadToEndAsync(old, deadline.Token);
            }

            await stopping;
            var entry = await replicas.WaitForEntryAsync(session, e => e.EndedAt is not null);
            Assert.True(entry.Cancelled);
            if (i >= 0)
            {
                cancelled.Add(Stopwatch.GetElapsedTime(sentAt, cancelledAt).TotalMilliseconds);
                upstreamClosed.Add((entry.EndedAt!.Value - sentWall).TotalMilliseconds);
            }
        }

        output.WriteLine($"cross-replica supersede over Redis, loopback, {iterations} runs (from sending the newer request to B):");
        output.WriteLine($"  A's lease cancelled:      p50 {Percentile(cancelled, 0.50):F2} ms  p99 {Percentile(cancelled, 0.99):F2} ms  max {cancelled.Max():F2} ms");
        output.WriteLine($"  A's upstream closed:      p50 {Percentile(upstreamClosed, 0.50):F2} ms  p99 {Percentile(upstreamClosed, 0.99):F2} ms  max {upstreamClosed.Max():F2} ms");
    }

    private static double Percentile(List<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
