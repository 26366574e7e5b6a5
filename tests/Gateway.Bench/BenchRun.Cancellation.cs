using Gateway.Bench.Load;
using Gateway.Bench.Report;
using MockLlm;

namespace Gateway.Bench;

/// <summary>How the bench cancels a flowing stream.</summary>
internal enum CancelMode
{
    /// <summary>The client closes its socket.</summary>
    ClientDrop,

    /// <summary>A newer request with the same session key, on a connection opened beforehand (a client with a pool).</summary>
    Supersede,

    /// <summary>A newer request with the same session key on a TCP connection opened after the decision (a
    /// browser's first request, a client without a pool): the connect is part of the time.</summary>
    SupersedeFresh,
}

/// <summary>The cancellation phase: how fast a vanished or superseded client stops the upstream, and the tokens wasted.</summary>
internal sealed partial class BenchRun
{
    /// <summary>
    /// One stream at a time: once it is flowing (and after a random part of a token interval, so the
    /// cancel lands anywhere on the token schedule), the client vanishes or a newer request with the
    /// same session key is sent. Latency is from that moment to the mock's ledger recording the
    /// upstream request's end, both on the wall clock of this process; wasted tokens are those the
    /// ledger counted after that moment. A supersede also records where its time went: the connect
    /// (fresh mode), and when the newer request reached the mock after the old one ended.
    /// </summary>
    private async Task CancellationAsync(LegResult leg, CancelMode mode, CancelSamples into, int samples)
    {
        Console.WriteLine($"bench: {mode} via {leg.Leg} ×{samples}");
        var target = Target(leg.Leg);
        var latencies = new List<double>();
        var wasted = into.Wasted;
        var connects = into.Connects;
        var newerArrivals = into.NewerArrivals;
        var rate = _options.CancelTokensPerSecond;
        var intervalMs = 1000 / rate;
        for (var i = 0; i < samples; i++)
        {
            Ledger.Clear();
            var sessionId = $"{mode}-{leg.Leg}-{i}";
            var request = new StreamRequest(sessionId, rate, (int)Math.Max(100, rate * 30));
            using var client = new StreamClient(request);
            using var newer = mode == CancelMode.ClientDrop ? null : new StreamClient(new StreamRequest(sessionId, 1000, 1));
            try
            {
                await client.ConnectAsync(target, CancellationToken.None);
                client.Send(request.ToBytes(target));
                if (!await client.WaitForEventsAsync(3).WaitAsync(StepTimeout))
                {
                    leg.CancelFailures++;
                    continue;
                }

                await Task.Delay(TimeSpan.FromMilliseconds(_random.NextDouble() * intervalMs));
                if (mode == CancelMode.Supersede)
                {
                    await newer!.ConnectAsync(target, CancellationToken.None);
                }

                var newerBytes = newer?.Request.ToBytes(target);
                var oldId = Ledger.Snapshot().First(e => e.SessionId == sessionId).Id;
                var before = Ledger.Snapshot().First(e => e.Id == oldId).TokensSent;
                var decidedAt = DateTimeOffset.UtcNow;
                if (newer is not null)
                {
                    if (mode == CancelMode.SupersedeFresh)
                    {
                        await newer.ConnectAsync(target, CancellationToken.None);
                        connects.Add((DateTimeOffset.UtcNow - decidedAt).TotalMilliseconds);
                    }

                    newer.Send(newerBytes!);
                }
                else
                {
                    client.Drop();
                }

                var entries = await Ledger.WaitForAsync(s => s.FirstOrDefault(e => e.Id == oldId)?.EndedAt is not null, StepTimeout);
                var old = entries.First(e => e.Id == oldId);
                if (old.Completed)
                {
                    leg.CancelFailures++;
                    continue;
                }

                latencies.Add((old.EndedAt!.Value - decidedAt).TotalMilliseconds);
                wasted.Add(old.TokensSent - before);
                if (newer is not null)
                {
                    await Task.WhenAll(client.Completion, newer.Completion).WaitAsync(StepTimeout);
                    if (Ledger.Snapshot().FirstOrDefault(e => e.SessionId == sessionId && e.Id != oldId) is { } next)
                    {
                        newerArrivals.Add((next.StartedAt - old.EndedAt.Value).TotalMilliseconds);
                    }
                }
            }
            catch (Exception ex) when (ex is TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                leg.CancelFailures++;
            }
        }

        into.Latencies.AddRange(latencies);
        if (Percentiles.Of(latencies) is { } round)
        {
            into.P50ByRound.Add(round.P50);
            into.P99ByRound.Add(round.P99);
        }
    }

    /// <summary>
    /// The cancellation phase, every leg: the samples split into rounds in which the legs take turns (order reversed
    /// every other round; through the gateway a round also runs both kinds of supersede), so a slow minute of the
    /// machine falls on every leg alike. Each figure is the median of the rounds' medians, with its interquartile range.
    /// </summary>
    private async Task CancellationRoundsAsync()
    {
        var rounds = _options.CancelRounds;
        var collected = new Dictionary<(string Leg, CancelMode Mode), CancelSamples>();

        // An unmeasured round first, so the rounds measure proxies whose cancel paths are compiled (the first round of a
        // cold proxy read twice the others' median in the runs of 2026-12-08).
        foreach (var leg in !_options.Smoke ? _result.Legs : [])
        {
            foreach (var mode in ModesOf(leg))
            {
                var failures = leg.CancelFailures;
                await PhaseAsync($"{Describe(mode)} warm-up (not measured)", leg.Leg, () => CancellationAsync(leg, mode, new CancelSamples(), WarmUpSamples));
                leg.CancelFailures = failures;
            }
        }

        for (var round = 0; round < rounds; round++)
        {
            var order = round % 2 == 0 ? _result.Legs : Enumerable.Reverse(_result.Legs).ToList();
            foreach (var leg in order)
            {
                foreach (var mode in ModesOf(leg))
                {
                    var total = mode == CancelMode.ClientDrop ? _options.DropSamples : _options.SupersedeSamples;
                    var share = (total / rounds) + (round < total % rounds ? 1 : 0);
                    var samples = collected.TryGetValue((leg.Leg, mode), out var found) ? found : collected[(leg.Leg, mode)] = new CancelSamples();
                    var label = $"{Describe(mode)} round {round + 1}/{rounds}";
                    await PhaseAsync(label, leg.Leg, () => CancellationAsync(leg, mode, samples, share));
                }
            }
        }

        foreach (var ((legName, mode), samples) in collected)
        {
            var leg = _result.Legs.First(l => l.Leg == legName);
            var figure = new CancelFigure(Percentiles.Of(samples.Latencies), samples.Wasted.Count > 0 ? samples.Wasted.Average() : null,
                Percentiles.Of(samples.Connects), Percentiles.Of(samples.NewerArrivals),
                samples.P50ByRound, Spread.Of(samples.P50ByRound), Spread.Of(samples.P99ByRound));
            switch (mode)
            {
                case CancelMode.ClientDrop: leg.ClientDrop = figure; break;
                case CancelMode.Supersede: leg.Supersede = figure; break;
                default: leg.SupersedeFresh = figure; break;
            }
        }

        // Only the gateway supersedes: the others have no session keys.
        static CancelMode[] ModesOf(LegResult leg) => leg.Leg == LegNames.Gateway
            ? [CancelMode.ClientDrop, CancelMode.Supersede, CancelMode.SupersedeFresh]
            : [CancelMode.ClientDrop];

        static string Describe(CancelMode mode) => mode switch
        {
            CancelMode.ClientDrop => "client drop",
            CancelMode.Supersede => "supersede",
            _ => "supersede on a fresh connection",
        };
    }

    private const int WarmUpSamples = 40;

    /// <summary>One leg's and one mode's samples over every round.</summary>
    private sealed class CancelSamples
    {
        public List<double> Latencies { get; } = [];
        public List<double> Wasted { get; } = [];
        public List<double> Connects { get; } = [];
        public List<double> NewerArrivals { get; } = [];
        public List<double> P50ByRound { get; } = [];
        public List<double> P99ByRound { get; } = [];
    }
}
