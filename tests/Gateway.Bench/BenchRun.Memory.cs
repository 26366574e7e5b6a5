using System.Diagnostics;
using Gateway.Bench.Load;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;
using MockLlm;

namespace Gateway.Bench;

/// <summary>The memory phase: the proxy's resident memory per open stream.</summary>
internal sealed partial class BenchRun
{
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
            double? heapMb = proxy is not null && leg.Leg is LegNames.Gateway or LegNames.PlainYarp
                ? await HeapProbe.LiveBytesAfterFullGcAsync(proxy.Pid, StepTimeout) / 1048576.0
                : null;
            var stillOpen = all.Count(c => !c.Completion.IsCompleted);
            leg.Memory.Add(new MemoryFigure(requested, open, rss / 1048576.0, proxy is null || open == 0 ? null : (rss - idle) / 1024.0 / open, heapMb));
            Console.WriteLine($"bench:   {open} streams open, proxy RSS {rss / 1048576.0:F1} MB"
                + (heapMb is { } h ? $", heap after a full GC {h:F1} MB ({stillOpen} open after it)" : ""));
        }

        // The level with the most streams open, and the next below it: the two top levels, unless streams of a short hold
        // (the smoke run's) had already ended by the last one.
        var measured = leg.Memory.Where(m => m.HeapMb is not null).ToList();
        if (measured.MaxBy(m => m.Streams) is { } high && measured.Where(m => m.Streams < high.Streams).MaxBy(m => m.Streams) is { } low)
        {
            leg.HeapPerStream = new HeapSlopeFigure(low.Streams, high.Streams, low.HeapMb!.Value, high.HeapMb!.Value,
                (high.HeapMb.Value - low.HeapMb.Value) * 1048576.0 / (high.Streams - low.Streams));
            Console.WriteLine($"bench:   heap per live stream {leg.HeapPerStream.BytesPerStream:F0} B (slope from {low.Streams} to {high.Streams} streams)");
        }

        await WhenEnded(all, _options.MemoryHold - hold.Elapsed + TimeSpan.FromSeconds(60));
        Account(leg, all);
    }
}
