using System.Globalization;
using Gateway.Bench.Load;
using Gateway.Bench.Report;
using MockLlm;

namespace Gateway.Bench;

/// <summary>The allocations phase: bytes the proxy process allocates per stream and per chunk, read from its
/// own runtime (<c>GC.GetTotalAllocatedBytes</c>), which the neighbours on a shared machine cannot move.</summary>
internal sealed partial class BenchRun
{
    /// <summary>
    /// Two batches of short streams, the same count, one with few tokens and one with many: the slope between
    /// them is the bytes per chunk, the rest the bytes a stream costs whatever its length. The gateway reports
    /// its total through <c>/metrics</c> (the runtime's <c>dotnet.gc.heap.total_allocated</c>), plain YARP
    /// through the bench's own endpoint; both are the same runtime counter.
    /// </summary>
    private async Task AllocationsAsync(LegResult leg)
    {
        var proxy = Proxy(leg.Leg);
        if (proxy is null || leg.Leg is not (LegNames.Gateway or LegNames.PlainYarp))
        {
            return;
        }

        var target = Target(leg.Leg);
        var streams = _options.Smoke ? 50 : _options.AllocationStreams;
        (int Short, int Long) tokens = (4, 44);
        Console.WriteLine($"bench: allocations via {leg.Leg}, {streams} streams of {tokens.Short} and of {tokens.Long} tokens");
        Ledger.Clear();
        await RunBatchAsync("warm", Math.Min(streams, 200), tokens.Long);

        var before = await AllocatedBytesAsync(leg.Leg, target);
        await RunBatchAsync("short", streams, tokens.Short);
        var middle = await AllocatedBytesAsync(leg.Leg, target);
        await RunBatchAsync("long", streams, tokens.Long);
        var after = await AllocatedBytesAsync(leg.Leg, target);

        var shortBytes = (middle - before) / (double)streams;
        var longBytes = (after - middle) / (double)streams;
        var perChunk = (longBytes - shortBytes) / (tokens.Long - tokens.Short);
        leg.Allocations = new AllocationFigure(streams, shortBytes, longBytes, perChunk, shortBytes - perChunk * tokens.Short);
        Console.WriteLine($"bench:   {shortBytes:F0} B a {tokens.Short}-token stream, {longBytes:F0} B a {tokens.Long}-token stream, {perChunk:F0} B a chunk");

        async Task RunBatchAsync(string name, int count, int length)
        {
            var requests = Enumerable.Range(0, count).Select(i => new StreamRequest($"alloc-{leg.Leg}-{name}-{i}", 2000, length));
            var clients = await StreamClient.OpenManyAsync(target, requests, 64, null, CancellationToken.None);
            await WhenEnded(clients, StepTimeout);
            var missing = clients.Sum(c => c.Missing);
            if (missing > 0 || clients.Any(c => c.Error is not null))
            {
                throw new InvalidOperationException($"allocations via {leg.Leg}: {missing} events missing in the {name} batch");
            }

            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    /// <summary>The proxy process's allocated bytes so far.</summary>
    private static async Task<long> AllocatedBytesAsync(string leg, System.Net.IPEndPoint target)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{target}") };
        if (leg == LegNames.PlainYarp)
        {
            return long.Parse(await http.GetStringAsync(PlainYarpHostAllocatedPath), CultureInfo.InvariantCulture);
        }

        var text = await http.GetStringAsync("/metrics");
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("dotnet_gc_heap_total_allocated_bytes_total", StringComparison.Ordinal))
            {
                return (long)double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("the gateway's /metrics has no dotnet_gc_heap_total_allocated_bytes_total");
    }

    private const string PlainYarpHostAllocatedPath = Proxies.PlainYarpHost.AllocatedPath;
}
