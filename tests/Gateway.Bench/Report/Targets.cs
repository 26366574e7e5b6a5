using System.Globalization;

namespace Gateway.Bench.Report;

/// <summary>The issue's targets, judged from this run's figures only (ratios within the run).</summary>
internal static class Targets
{
    public static void Evaluate(BenchResult result, BenchOptions options)
    {
        var gateway = result[LegNames.Gateway];
        var yarp = result[LegNames.PlainYarp];
        var nginx = result[LegNames.Nginx];
        var checks = result.Targets;
        if (gateway is null)
        {
            return;
        }

        var direct = result[LegNames.Direct];
        // Latencies are judged on the rounds' medians (or p99s): met when the gateway's interquartile range lies wholly at
        // or below the bound's (a peer's range, plus the allowance), missed when wholly above it; ranges that overlap say so.
        var drop = gateway.ClientDrop;
        checks.Add(Judged("client drop p50 ≤ nginx's p50 + 0.5 ms (medians of rounds)",
            $"{S(drop?.P50Rounds)} ms vs {S(nginx?.ClientDrop?.P50Rounds)} ms",
            (drop?.P50Rounds, nginx?.ClientDrop?.P50Rounds?.Plus(0.5))));
        checks.Add(Judged("client drop p99 ≤ plain YARP's (medians of rounds)",
            $"{S(drop?.P99Rounds)} ms vs {S(yarp?.ClientDrop?.P99Rounds)} ms",
            (drop?.P99Rounds, yarp?.ClientDrop?.P99Rounds)));
        checks.Add(new TargetCheck("tokens written after a client drop ≤ the direct leg's",
            $"{F(gateway.ClientDrop?.WastedTokens)} vs {F(direct?.ClientDrop?.WastedTokens)} per drop",
            gateway.ClientDrop?.WastedTokens is { } w && direct?.ClientDrop?.WastedTokens is { } dw ? w <= dw : null));
        checks.Add(Judged("supersede (pooled connection) p50 ≤ 1 ms and p99 ≤ 5 ms (medians of rounds)",
            $"p50 {S(gateway.Supersede?.P50Rounds)} ms, p99 {S(gateway.Supersede?.P99Rounds)} ms",
            (gateway.Supersede?.P50Rounds, Spread.Exactly(1)), (gateway.Supersede?.P99Rounds, Spread.Exactly(5))));
        checks.Add(Judged("supersede on a fresh TCP connection p50 ≤ the gateway's client-drop p50 + 0.5 ms, p99 ≤ 5 ms (medians of rounds)",
            $"p50 {S(gateway.SupersedeFresh?.P50Rounds)} ms vs client drop {S(drop?.P50Rounds)} ms, p99 {S(gateway.SupersedeFresh?.P99Rounds)} ms",
            (gateway.SupersedeFresh?.P50Rounds, drop?.P50Rounds?.Plus(0.5)), (gateway.SupersedeFresh?.P99Rounds, Spread.Exactly(5))));
        checks.Add(new TargetCheck("first token with a 1 MB prompt p50 ≤ plain YARP's + 0.5 ms",
            $"{F(gateway.LargePromptFirstTokenMs?.P50)} ms vs {F(yarp?.LargePromptFirstTokenMs?.P50)} ms",
            gateway.LargePromptFirstTokenMs is { } l && yarp?.LargePromptFirstTokenMs is { } ly ? l.P50 <= ly.P50 + 0.5 : null));
        foreach (var figure in gateway.Throughput)
        {
            var plain = yarp?.Throughput.FirstOrDefault(t => t.Api == figure.Api && t.Streams == figure.Streams && t.TokensPerSecond == figure.TokensPerSecond);
            var ratio = figure.ProxyCpuMicrosPerChunk / plain?.ProxyCpuMicrosPerChunk;
            checks.Add(new TargetCheck($"CPU per chunk ≤ 1.05 × plain YARP, {figure.Api} at {figure.Streams} × {figure.TokensPerSecond:0.#}/s",
                $"{F(figure.ProxyCpuMicrosPerChunk)} µs vs {F(plain?.ProxyCpuMicrosPerChunk)} µs = {F(ratio)} ×",
                ratio is { } r ? r <= 1.05 : null));
        }

        var top = gateway.Memory.LastOrDefault();
        var plainTop = top is null ? null : yarp?.Memory.FirstOrDefault(m => m.RequestedStreams == top.RequestedStreams);
        var memoryRatio = top?.KbPerStream / plainTop?.KbPerStream;
        checks.Add(new TargetCheck("memory per stream ≤ 1.15 × plain YARP at the top level",
            top is null ? "-" : $"{F(top.KbPerStream)} KB vs {F(plainTop?.KbPerStream)} KB at {top.Streams} streams = {F(memoryRatio)} ×",
            memoryRatio is { } m ? m <= 1.15 : null));
        var heap = gateway.HeapPerStream;
        var plainHeap = yarp?.HeapPerStream;
        var heapRatio = heap?.BytesPerStream / plainHeap?.BytesPerStream;
        checks.Add(new TargetCheck("heap per live stream ≤ 1.15 × plain YARP (slope between the two top levels, after a full GC)",
            heap is null ? "-" : $"{F(heap.BytesPerStream)} B vs {F(plainHeap?.BytesPerStream)} B ({heap.LowStreams} → {heap.HighStreams} streams) = {F(heapRatio)} ×",
            heapRatio is { } hr ? hr <= 1.15 : null));
        checks.Add(new TargetCheck("no chunk lost, no stream failed",
            $"{gateway.ChunksLost} of {gateway.ChunksExpected} lost, {gateway.FailedStreams} streams failed, top level {top?.Streams ?? 0} streams",
            gateway.ChunksExpected > 0 ? gateway.ChunksLost == 0 && gateway.FailedStreams == 0 : null));
        var abort = gateway.MassAbort;
        var plainAbort = yarp?.MassAbort;
        checks.Add(new TargetCheck("mass abort: every upstream closed within 600 ms",
            abort is null ? "-" : $"all {abort.Streams} closed after {F(abort.AllClosedAfterMs)} ms (plain YARP {F(plainAbort?.AllClosedAfterMs)} ms)",
            abort is null ? null : abort.AllClosedAfterMs is { } closed && closed <= 600));
        checks.Add(new TargetCheck("mass abort: no more upstream open at 500 ms than plain YARP",
            abort is null ? "-" : $"{abort.OpenAfter500Ms} of {abort.Streams} vs plain YARP {F(plainAbort?.OpenAfter500Ms)}",
            abort is not null && plainAbort is not null ? abort.OpenAfter500Ms <= plainAbort.OpenAfter500Ms : null));

        var rolling = result.RollingDeploy;
        checks.Add(new TargetCheck("rolling deploy: no stream reset, no request during the drain failed",
            rolling is null ? "-" : $"{rolling.StreamsReset} of {rolling.Streams} reset ({rolling.StreamsOnTerminated} on the terminated replica), " +
                $"{rolling.RequestsDuringDrainFailed} of {rolling.RequestsDuringDrain} failed, SIGTERM to exit {F(rolling.DrainSeconds)} s",
            rolling is null ? null : rolling.StreamsReset == 0 && rolling.RequestsDuringDrainFailed == 0 && rolling.StreamsOnTerminated > 0 && rolling.ExitCode == 0));

        if (gateway.RealServerTokensAfterCancel is not null || direct?.RealServerTokensAfterCancel is not null)
        {
            var own = gateway.RealServerTokensAfterCancel;
            var baseline = direct?.RealServerTokensAfterCancel;
            checks.Add(new TargetCheck("real server: tokens generated after the cancel decision ≤ the direct leg's",
                $"mean {F(own?.Mean)} vs {F(baseline?.Mean)} (p99 {F(own?.P99)} vs {F(baseline?.P99)})",
                own is not null && baseline is not null ? own.Mean <= baseline.Mean : null));
        }
    }

    private static string F(double? value) => value?.ToString("0.###", CultureInfo.InvariantCulture) ?? "-";

    private static string S(Spread? spread) => spread?.Format("0.###") ?? "-";

    /// <summary>Met when every figure's interquartile range is at or below its bound's, missed when one lies wholly above,
    /// covered when ranges overlap (and none is missed); not measured when a figure or a bound is missing.</summary>
    private static TargetCheck Judged(string target, string measured, params (Spread? Figure, Spread? Bound)[] parts)
    {
        if (parts.Any(p => p.Figure is null || p.Bound is null))
        {
            return new TargetCheck(target, measured, null);
        }

        var verdicts = parts.Select(p => p.Figure!.AtMost(p.Bound!)).ToList();
        return verdicts.Contains(false) ? new TargetCheck(target, measured, false)
            : verdicts.All(v => v == true) ? new TargetCheck(target, measured, true)
            : new TargetCheck(target, measured, null, Covered: true);
    }
}
