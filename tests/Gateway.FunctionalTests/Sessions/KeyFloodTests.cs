using System.Collections.Concurrent;
using Gateway.Savings;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using MockLlm;
using Xunit.Abstractions;

namespace Gateway.Tests.Sessions;

/// <summary>
/// Thousands of keys, each used once, from thousands of credentials: the registry holds only the
/// streams that are running, and is empty again when they end, so a client minting keys cannot grow
/// the gateway's memory.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class KeyFloodTests(ITestOutputHelper output)
{
    private const int Requests = 2_000;
    private const int Concurrency = 32;

    [Fact]
    public async Task FloodOfDistinctKeysAndCredentials_AllComplete_RegistryHoldsOnlyRunningStreamsAndEmptiesAfter()
    {
        await using var stack = await Stack.StartAsync(
            new MockLlmOptions { TokensPerSecond = 10_000, TimeToFirstTokenMs = 0 },
            s =>
            {
                // Limits on, so every credential makes its own limiter partitions; generous enough that none refuses.
                s["ReverseProxy:Routes:flood:RateLimiterPolicy"] = "per-tenant";
                s["Gateway:RateLimits:TokenLimit"] = "10";
                s["Gateway:RateLimits:MaxConcurrentStreams"] = "4";
            },
            routeId: "flood");
        var registry = stack.Gateway.Registry;
        var statuses = new ConcurrentDictionary<int, int>();
        var failures = new ConcurrentQueue<string>();
        var maxActive = 0;
        var before = GC.GetTotalMemory(forceFullCollection: true);

        await Parallel.ForEachAsync(Enumerable.Range(0, Requests), new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (i, ct) =>
        {
            using var request = StreamReading.ChatRequest("/v1/chat/completions", "flood", $"flood-{i}-{Guid.NewGuid():N}", maxTokens: 1,
                authorization: $"Bearer {Guid.NewGuid():N}{Guid.NewGuid():N}");
            using var response = await StreamReading.SendAsync(stack.Client, request, ct);
            InterlockedMax(ref maxActive, registry.Count);
            var transcript = await StreamReading.ReadToEndAsync(response, ct);
            statuses.AddOrUpdate(transcript.StatusCode, 1, (_, n) => n + 1);
            if (!transcript.EndedCleanly || transcript.DataEvents.Count == 0 || transcript.DataEvents[^1] != "[DONE]")
            {
                failures.Enqueue($"#{i}: {transcript.StatusCode} {transcript.ReadError?.Message} {string.Join(" ", transcript.Lines.Take(3))}");
            }
        });
        await registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        var after = GC.GetTotalMemory(forceFullCollection: true);
        output.WriteLine($"statuses: {string.Join(", ", statuses.Select(s => $"{s.Key}x{s.Value}"))}; most active seen: {maxActive}; " +
            $"managed heap before {before / 1024} KiB, after {after / 1024} KiB (whole test process)");

        Assert.Empty(failures);
        Assert.Equal(Requests, statuses.GetValueOrDefault(200));
        // Only running streams are held. A lease is released just after its client read the end, so a
        // worker's next request can briefly overlap its last one: at most twice the concurrency.
        Assert.InRange(maxActive, 1, 2 * Concurrency);
        Assert.Equal(0, registry.Count);
        var ledger = stack.Ledger.Snapshot();
        Assert.Equal(Requests, ledger.Count);
        Assert.All(ledger, e => Assert.True(e.Completed));
        Assert.Equal(Requests, ledger.Select(e => e.SessionId).Distinct().Count());
        Assert.Equal(0, stack.Gateway.Services.GetRequiredService<SessionSavings>().Count); // nothing was cancelled, nothing kept
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current)
        {
            var seen = Interlocked.CompareExchange(ref target, value, current);
            if (seen == current)
            {
                return;
            }

            current = seen;
        }
    }
}
