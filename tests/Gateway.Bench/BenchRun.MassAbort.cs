using System.Diagnostics;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;
using MockLlm;

namespace Gateway.Bench;

/// <summary>The mass-abort phase: upstream requests still open after many clients vanish at once.</summary>
internal sealed partial class BenchRun
{
    /// <summary>The unmeasured drops before the measured burst come in this many waves.</summary>
    private const int WarmWaves = 6;

    /// <summary>Many streaming clients vanish at once (their sockets closed in one tight loop); the
    /// mock's ledger says how many upstream requests are still open 100 ms and 500 ms after the last.</summary>
    private async Task MassAbortAsync(LegResult leg, int maxStreams)
    {
        var count = Math.Min(_options.MassAbortStreams, maxStreams);
        if (count < _options.MassAbortStreams)
        {
            _result.Notes.Add($"{leg.Leg}: mass abort ran with {count} clients (open-files limit {_result.OpenFilesLimit}).");
        }

        var target = Target(leg.Leg);

        // Small unmeasured aborts first: a proxy that has been up for a while has compiled its
        // client-drop path; the figure is for that proxy, not for its first minute. One burst does
        // not get it there: .NET counts a method's calls towards its optimised compile only once no
        // method has been compiled for 100 ms, and with dynamic PGO a method is compiled twice more
        // (instrumented, then optimised) after 30 counted calls each. A single warm-up burst left
        // the abort path at tier 0 for the measured burst (docs/performance.md); six waves 400 ms
        // apart, each well over 30 drops, take it through every tier on both .NET proxies.
        var warm = Math.Max(WarmWaves, count / 20);
        Console.WriteLine($"bench: mass abort via {leg.Leg}, {warm} clients to warm up in {WarmWaves} waves, then {count}");
        Ledger.Clear();
        var warming = await OpenSlowStreamsAsync(target, $"abort-warm-{leg.Leg}", warm);
        foreach (var wave in warming.Chunk((warm + WarmWaves - 1) / WarmWaves))
        {
            foreach (var client in wave)
            {
                client.Drop();
            }

            await Task.Delay(TimeSpan.FromMilliseconds(400));
        }

        await WhenEnded(warming, StepTimeout);
        await Ledger.WaitForAsync(entries => entries.All(e => e.EndedAt is not null), StepTimeout);

        Ledger.Clear();
        var clients = await OpenSlowStreamsAsync(target, $"abort-{leg.Leg}", count);
        var flowing = clients.Count(c => c.Events > 0);
        leg.FailedStreams += count - flowing;
        await Task.Delay(_options.Settle);

        var proxy = Proxy(leg.Leg);
        var cpu0 = proxy?.CpuTicks() ?? 0;
        var loop = Stopwatch.StartNew();
        foreach (var client in clients)
        {
            client.Drop();
        }

        var closeLoopMs = loop.Elapsed.TotalMilliseconds;
        var gone = Stopwatch.StartNew();
        int? open100 = null, open500 = null;
        double? allClosed = null;
        while (gone.Elapsed < TimeSpan.FromSeconds(30) && (allClosed is null || open500 is null))
        {
            var open = Ledger.Snapshot().Count(e => e.EndedAt is null);
            var at = gone.Elapsed;
            if (open == 0 && allClosed is null)
            {
                allClosed = at.TotalMilliseconds;
            }

            if (at >= TimeSpan.FromMilliseconds(100))
            {
                open100 ??= open;
            }

            if (at >= TimeSpan.FromMilliseconds(500))
            {
                open500 ??= open;
            }

            var next = open100 is null ? TimeSpan.FromMilliseconds(100) : open500 is null ? TimeSpan.FromMilliseconds(500) : TimeSpan.MaxValue;
            var step = TimeSpan.FromMilliseconds(20);
            var wait = next - gone.Elapsed < step ? next - gone.Elapsed : step;
            await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
        }

        // CPU from the first close until the proxy is idle again (its bookkeeping after the upstream
        // closes included): what the aborts cost it.
        var cpu1 = proxy is null ? 0 : await IdleCpuTicksAsync(proxy);
        Console.WriteLine($"bench: {leg.Leg} idle again {gone.Elapsed.TotalMilliseconds:F0} ms after the closes");
        double? cpuPerStream = proxy is null || allClosed is null || flowing == 0 ? null : (cpu1 - cpu0) / ProcessStats.TicksPerSecond * 1e6 / flowing;
        leg.MassAbort = new MassAbortFigure(flowing, open100 ?? -1, open500 ?? -1, allClosed, closeLoopMs, cpuPerStream);
        await WhenEnded(clients, StepTimeout);
    }
}
