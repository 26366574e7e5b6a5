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

        checks.Add(new TargetCheck("client-drop p99 ≤ nginx's",
            $"{F(gateway.ClientDropMs?.P99)} ms vs {F(nginx?.ClientDropMs?.P99)} ms",
            gateway.ClientDropMs is { } d && nginx?.ClientDropMs is { } n ? d.P99 <= n.P99 : null));
        checks.Add(new TargetCheck("supersede p50 ≤ 1 ms and p99 ≤ 5 ms",
            $"p50 {F(gateway.SupersedeMs?.P50)} ms, p99 {F(gateway.SupersedeMs?.P99)} ms",
            gateway.SupersedeMs is { } s ? s.P50 <= 1 && s.P99 <= 5 : null));
        checks.Add(new TargetCheck($"wasted tokens ≤ 0.05 per cancellation at {options.CancelTokensPerSecond:0.#} tokens/s",
            $"client drop {F(gateway.ClientDropWastedTokens)}, supersede {F(gateway.SupersedeWastedTokens)}",
            gateway.ClientDropWastedTokens is { } w1 && gateway.SupersedeWastedTokens is { } w2 ? w1 <= 0.05 && w2 <= 0.05 : null));
        foreach (var figure in gateway.Throughput)
        {
            var plain = yarp?.Throughput.FirstOrDefault(t => t.Api == figure.Api && t.Streams == figure.Streams && t.TokensPerSecond == figure.TokensPerSecond);
            var ratio = figure.ProxyCpuMicrosPerChunk / plain?.ProxyCpuMicrosPerChunk;
            checks.Add(new TargetCheck($"CPU per chunk ≤ 1.05 × plain YARP, {figure.Api} at {figure.Streams} × {figure.TokensPerSecond:0.#}/s",
                $"{F(figure.ProxyCpuMicrosPerChunk)} µs vs {F(plain?.ProxyCpuMicrosPerChunk)} µs = {F(ratio)} ×",
                ratio is { } r ? r <= 1.05 : null));
        }

        var top = gateway.Memory.LastOrDefault();
        checks.Add(new TargetCheck("memory per stream ≤ 24 KB at 10k streams",
            top is null ? "-" : $"{F(top.KbPerStream)} KB at {top.Streams} streams",
            top?.KbPerStream is { } kb && top.Streams >= 10000 ? kb <= 24 : null));
        checks.Add(new TargetCheck("10,000 concurrent streams with zero lost chunks",
            $"{gateway.ChunksLost} of {gateway.ChunksExpected} lost, {gateway.FailedStreams} streams failed, top level {top?.Streams ?? 0} streams",
            top is not null && top.Streams >= 10000 ? gateway.ChunksLost == 0 && gateway.FailedStreams == 0 : null));
        var abort = gateway.MassAbort;
        checks.Add(new TargetCheck("mass abort of 10,000 clients: no upstream open 500 ms later",
            abort is null ? "-" : $"{abort.OpenAfter500Ms} of {abort.Streams} open after 500 ms (plain YARP {F(yarp?.MassAbort?.OpenAfter500Ms)}, nginx {F(nginx?.MassAbort?.OpenAfter500Ms)})",
            abort is not null && abort.Streams >= 10000 ? abort.OpenAfter500Ms == 0 : null));

        var direct = result[LegNames.Direct];
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
}
