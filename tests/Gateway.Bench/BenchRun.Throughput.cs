using System.Diagnostics;
using Gateway.Bench.Load;
using Gateway.Bench.Report;
using MockLlm;

namespace Gateway.Bench;

/// <summary>The throughput phase: the proxy's CPU per streamed event.</summary>
internal sealed partial class BenchRun
{
    /// <summary>The throughput phase, every leg: an unmeasured warm-up, then the measured rounds, then each leg's figures.</summary>
    private async Task ThroughputRoundsAsync(int maxStreams)
    {
        // An unmeasured round first (the first workload through each proxy): the figure is for a proxy
        // whose streaming path is compiled, not for its first seconds.
        foreach (var leg in !_options.Smoke ? _result.Legs.Where(l => l.Leg != LegNames.Direct) : [])
        {
            var (streams, rate) = _options.Throughput[0];
            foreach (var api in _options.ThroughputApis)
            {
                await PhaseAsync("throughput warm-up (not measured)", leg.Leg, () => ThroughputAsync(leg, api, Math.Min(streams, maxStreams), rate, record: false));
            }
        }

        for (var round = 0; round < _options.ThroughputRounds; round++)
        {
            // Legs take turns within a round, in reverse order every other round; direct (no proxy,
            // no CPU figure) only in the first.
            var order = round % 2 == 0 ? _result.Legs : Enumerable.Reverse(_result.Legs).ToList();
            foreach (var leg in order.Where(l => round == 0 || l.Leg != LegNames.Direct))
            {
                foreach (var api in _options.ThroughputApis)
                {
                    foreach (var (streams, rate) in _options.Throughput)
                    {
                        var label = $"throughput round {round + 1}/{_options.ThroughputRounds}";
                        await PhaseAsync(label, leg.Leg, () => ThroughputAsync(leg, api, Math.Min(streams, maxStreams), rate));
                    }
                }
            }
        }

        foreach (var leg in _result.Legs)
        {
            foreach (var ((api, streams, rate), samples) in leg.ThroughputSamples)
            {
                leg.Throughput.Add(ThroughputFigures.Sum(api, streams, rate, samples));
            }
        }
    }

    /// <summary>
    /// <paramref name="streams"/> streams at <paramref name="rate"/> tokens/s, started evenly over the
    /// ramp so they do not tick in lock-step; after a warm-up, the proxy's CPU time over a window is
    /// divided by the events the clients received in it. Every stream then runs to its end and is
    /// checked for missing events.
    /// </summary>
    private async Task ThroughputAsync(LegResult leg, string api, int streams, double rate, bool record = true)
    {
        Console.WriteLine($"bench: throughput via {leg.Leg}, {api}, {streams} streams × {rate} tokens/s");
        Ledger.Clear();
        var target = Target(leg.Leg);
        var proxy = Proxy(leg.Leg);
        var tally = new EventTally();
        var ramp = _options.ThroughputRamp;
        var tokens = (int)Math.Ceiling(rate * (ramp + _options.ThroughputWarmup + _options.ThroughputWindow + TimeSpan.FromSeconds(1)).TotalSeconds);
        var clients = new List<StreamClient>(streams);
        var opening = new List<Task>(streams);
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < streams; i++)
        {
            var due = ramp * i / streams;
            if (due > clock.Elapsed)
            {
                await Task.Delay(due - clock.Elapsed);
            }

            var client = new StreamClient(new StreamRequest($"tp-{leg.Leg}-{i}", rate, tokens, Api: api), tally);
            clients.Add(client);
            opening.Add(OpenAsync(client, target));
        }

        await DelayUntil(clock, ramp + _options.ThroughputWarmup);
        var events0 = tally.Events;
        var cpu0 = proxy?.CpuTicks() ?? 0;
        var window = Stopwatch.StartNew();
        await Task.Delay(_options.ThroughputWindow);
        var events1 = tally.Events;
        var cpu1 = proxy?.CpuTicks() ?? 0;
        var seconds = window.Elapsed.TotalSeconds;

        await Task.WhenAll(opening);
        await WhenEnded(clients, TimeSpan.FromSeconds(tokens / rate) + TimeSpan.FromSeconds(30));
        Account(leg, clients);
        if (!record)
        {
            return;
        }

        var key = (api, streams, rate);
        if (!leg.ThroughputSamples.TryGetValue(key, out var samples))
        {
            leg.ThroughputSamples[key] = samples = [];
        }

        samples.Add(new ThroughputSample(events1 - events0, seconds, proxy is null ? null : cpu1 - cpu0));
    }
}
