using System.Diagnostics;
using System.Globalization;
using Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Tests.Redis;

/// <summary>
/// Cross-replica supersede latency on loopback: a stream runs on replica A, a newer request for the
/// same session goes to replica B, and we time from sending B's request to (1) A cancelling its lease
/// and (2) the mock model server seeing A's upstream request end (its ledger's EndedAt). Prints
/// p50/p99 and asserts no timing: in the suite it runs 10 rounds and checks every one was a real
/// cross-replica supersede; for the figure, run 300:
/// <code>GATEWAY_REDIS_BENCH_N=300 dotnet test tests/Gateway.Tests -c Release --filter Category=RedisBench --logger "console;verbosity=detailed"</code>
/// </summary>
[Collection(RedisCollection.Name)]
[Trait("Category", "RedisBench")]
public sealed class CrossReplicaLatencyBench(ITestOutputHelper output)
{
    [Fact]
    public async Task CrossReplicaSupersede_Latency_P50P99()
    {
        var iterations = int.TryParse(Environment.GetEnvironmentVariable("GATEWAY_REDIS_BENCH_N"), CultureInfo.InvariantCulture, out var n) ? n : 10;
        await using var replicas = await Replicas.StartAsync();
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
            var lease = replicas.A.Host.Registry.Snapshot().Single(l => l.Reason == Gateway.Sessions.CancelReason.None);
            var cancelledAt = 0L;
            using var registration = lease.Token.Register(() => cancelledAt = Stopwatch.GetTimestamp());

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
