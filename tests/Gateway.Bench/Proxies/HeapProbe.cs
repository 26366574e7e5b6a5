using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace Gateway.Bench.Proxies;

/// <summary>
/// The live managed heap of a .NET proxy process, read from outside through EventPipe (the runtime's diagnostics
/// port), the same way for the gateway and for plain YARP: a session with the runtime's <c>GCHeapCollect</c>
/// keyword makes the process run a full blocking collection at once (as <c>dotnet-gcdump</c> does), and that
/// collection's <c>GCHeapStats</c> event gives what survived it: the bytes promoted out of every generation and
/// the large- and pinned-object heaps, which after a full collection are the live objects. Not the generations'
/// sizes, which hold the free space a collection that did not compact leaves behind (a full run of 2026-12-08 read
/// 90 MB less at 9,500 streams than three runs before it that way), and not a background collection the runtime
/// started by itself. Neighbours on a shared machine can slow this down but not change the figure.
/// </summary>
internal static class HeapProbe
{
    /// <summary>Heap bytes that survived a full collection induced now in process <paramref name="pid"/>.</summary>
    /// <exception cref="TimeoutException">No full collection was reported within <paramref name="timeout"/>.</exception>
    public static async Task<long> LiveBytesAfterFullGcAsync(int pid, TimeSpan timeout)
    {
        var client = new DiagnosticsClient(pid);
        var keywords = (long)(ClrTraceEventParser.Keywords.GC | ClrTraceEventParser.Keywords.GCHeapCollect);
        using var session = await client.StartEventPipeSessionAsync(
            [new EventPipeProvider(ClrTraceEventParser.ProviderName, EventLevel.Informational, keywords)],
            requestRundown: false, circularBufferMB: 16, CancellationToken.None);
        var found = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        var processing = Task.Run(() =>
        {
            using var source = new EventPipeEventSource(session.EventStream);
            var fullBlocking = false;
            source.Clr.GCStart += e => fullBlocking = e.Depth == 2 && e.Type != GCType.BackgroundGC;
            source.Clr.GCHeapStats += e =>
            {
                if (fullBlocking)
                {
                    found.TrySetResult(e.TotalPromotedSize0 + e.TotalPromotedSize1 + e.TotalPromotedSize2 + e.TotalPromotedSize3 + e.TotalPromotedSize4);
                }
            };
            source.Process();
        });

        try
        {
            return await found.Task.WaitAsync(timeout);
        }
        finally
        {
            await session.StopAsync(CancellationToken.None);
            await processing.WaitAsync(timeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }
}
