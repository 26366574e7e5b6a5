using System.Diagnostics;
using System.Net;
using Gateway.Bench.Load;
using Gateway.Bench.Proxies;
using Gateway.Bench.Report;

namespace Gateway.Bench;

/// <summary>Helpers the phases share: opening, accounting and waiting for streams, the proxy's idle CPU.</summary>
internal sealed partial class BenchRun
{
    /// <summary>Streams of one token per second that last an hour, <paramref name="count"/> of them.</summary>
    private Task<List<StreamClient>> OpenSlowStreamsAsync(IPEndPoint target, string prefix, int count) =>
        StreamClient.OpenManyAsync(
            target, Enumerable.Range(0, count).Select(i => new StreamRequest($"{prefix}-{i}", 1, 3600)), _options.ConnectConcurrency, null, CancellationToken.None);

    /// <summary>The proxy's CPU ticks once it has used at most one tick (10 ms) in 200 ms (at most 10 s).</summary>
    private static async Task<long> IdleCpuTicksAsync(ProxyProcess proxy)
    {
        var bound = Stopwatch.StartNew();
        var last = proxy.CpuTicks();
        while (bound.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(200));
            var now = proxy.CpuTicks();
            if (now - last <= 1)
            {
                return now;
            }

            last = now;
        }

        return last;
    }

    private static async Task OpenAsync(StreamClient client, IPEndPoint target)
    {
        try
        {
            await client.ConnectAsync(target, CancellationToken.None);
            client.Send(client.Request.ToBytes(target));
        }
        catch (System.Net.Sockets.SocketException)
        {
            // Counted as missing events.
        }
    }

    private static void Account(LegResult leg, List<StreamClient> clients)
    {
        foreach (var client in clients)
        {
            leg.ChunksExpected += client.Request.ExpectedEvents;
            leg.ChunksLost += client.Missing;
            if (client.Status != 200 || client.Error is not null || !client.EndedByServer)
            {
                leg.FailedStreams++;
            }
        }
    }

    private static async Task WhenEnded(List<StreamClient> clients, TimeSpan timeout)
    {
        try
        {
            await Task.WhenAll(clients.Select(c => c.Completion)).WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            foreach (var client in clients)
            {
                client.Drop(); // the unfinished ones count as missing events
            }
        }
    }

    private static async Task DelayUntil(Stopwatch clock, TimeSpan at)
    {
        var left = at - clock.Elapsed;
        if (left > TimeSpan.Zero)
        {
            await Task.Delay(left);
        }
    }
}
