using Gateway.Bench.Load;
using Gateway.Bench.Report;
using MockLlm;

namespace Gateway.Bench;

/// <summary>The cancellation phase: how fast a vanished or superseded client stops the upstream, and the tokens wasted.</summary>
internal sealed partial class BenchRun
{
    /// <summary>
    /// One stream at a time: once it is flowing (and after a random part of a token interval, so the
    /// cancel lands anywhere on the token schedule), the client vanishes or a newer request with the
    /// same session key is sent. Latency is from that moment to the mock's ledger recording the
    /// upstream request's end, both on the wall clock of this process; wasted tokens are those the
    /// ledger counted after that moment.
    /// </summary>
    private async Task CancellationAsync(LegResult leg, bool supersede)
    {
        var samples = supersede ? _options.SupersedeSamples : _options.DropSamples;
        Console.WriteLine($"bench: {(supersede ? "supersede" : "client drop")} via {leg.Leg} ×{samples}");
        var target = Target(leg.Leg);
        var latencies = new List<double>();
        var wasted = new List<double>();
        var rate = _options.CancelTokensPerSecond;
        var intervalMs = 1000 / rate;
        for (var i = 0; i < samples; i++)
        {
            Ledger.Clear();
            var sessionId = $"{(supersede ? "sup" : "drop")}-{leg.Leg}-{i}";
            var request = new StreamRequest(sessionId, rate, (int)Math.Max(100, rate * 30));
            using var client = new StreamClient(request);
            using var newer = supersede ? new StreamClient(new StreamRequest(sessionId, 1000, 1)) : null;
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
                if (newer is not null)
                {
                    await newer.ConnectAsync(target, CancellationToken.None);
                }

                var newerBytes = newer?.Request.ToBytes(target);
                var before = Ledger.Snapshot().First(e => e.SessionId == sessionId).TokensSent;
                var decidedAt = DateTimeOffset.UtcNow;
                if (newer is not null)
                {
                    newer.Send(newerBytes!);
                }
                else
                {
                    client.Drop();
                }

                var entries = await Ledger.WaitForAsync(s => s.FirstOrDefault(e => e.SessionId == sessionId)?.EndedAt is not null, StepTimeout);
                var old = entries.First(e => e.SessionId == sessionId);
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
                }
            }
            catch (Exception ex) when (ex is TimeoutException or System.Net.Sockets.SocketException or InvalidOperationException)
            {
                leg.CancelFailures++;
            }
        }

        if (supersede)
        {
            leg.SupersedeMs = Percentiles.Of(latencies);
            leg.SupersedeWastedTokens = wasted.Count > 0 ? wasted.Average() : null;
        }
        else
        {
            leg.ClientDropMs = Percentiles.Of(latencies);
            leg.ClientDropWastedTokens = wasted.Count > 0 ? wasted.Average() : null;
        }
    }
}
