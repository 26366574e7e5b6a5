using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Bench.Report;

/// <summary>The result as a plain-text table: one row per figure, one column per leg.</summary>
internal static class Table
{
    public static string Render(BenchResult result)
    {
        var rows = new List<(string Figure, Func<LegResult, string> Value)>
        {
            ("client drop → upstream closed p50 (ms)", l => Ms(l.ClientDrop?.Ms?.P50)),
            ("  p50 / p99, median of rounds [IQR] (ms)", l => Rounds(l.ClientDrop)),
            ("client drop → upstream closed p99 (ms)", l => Ms(l.ClientDrop?.Ms?.P99)),
            ("  tokens written after the drop (mean)", l => Num(l.ClientDrop?.WastedTokens, "F3")),
            ("newer request → old upstream closed p50 (ms)", l => Ms(l.Supersede?.Ms?.P50)),
            ("newer request → old upstream closed p99 (ms)", l => Ms(l.Supersede?.Ms?.P99)),
            ("  p50 / p99, median of rounds [IQR] (ms)", l => Rounds(l.Supersede)),
            ("  tokens written after the newer request (mean)", l => Num(l.Supersede?.WastedTokens, "F3")),
            ("newer request, fresh connection → old closed p50 (ms)", l => Ms(l.SupersedeFresh?.Ms?.P50)),
            ("newer request, fresh connection → old closed p99 (ms)", l => Ms(l.SupersedeFresh?.Ms?.P99)),
            ("  p50 / p99, median of rounds [IQR] (ms)", l => Rounds(l.SupersedeFresh)),
            ("  of which the connect p50 / p99 (ms)", l => l.SupersedeFresh?.ConnectMs is { } c ? $"{c.P50:F3} / {c.P99:F3}" : "-"),
            ("  newer request at the mock after old closed p50 / p99 (ms)", l => l.SupersedeFresh?.NewerArrivedAfterMs is { } n ? $"{n.P50:F3} / {n.P99:F3}" : "-"),
            ("first token p50 / p99 (ms)", l => l.FirstTokenMs is { } f ? $"{f.P50:F2} / {f.P99:F2}" : "-"),
            ("first-token hop over direct p50 (ms)", l => Ms(l.FirstTokenHopP50Ms)),
            ("first-token hop over direct p99 (ms)", l => Ms(l.FirstTokenHopP99Ms)),
            ("first token with a 1 MB prompt p50 / p99 (ms)", l => l.LargePromptFirstTokenMs is { } f ? $"{f.P50:F2} / {f.P99:F2}" : "-"),
        };
        var throughput = result.Legs.SelectMany(l => l.Throughput).Select(t => (t.Api, t.Streams, t.TokensPerSecond)).Distinct().ToList();
        foreach (var (api, streams, rate) in throughput)
        {
            rows.Add(($"proxy CPU µs per chunk, {api} {streams} × {rate:0.#}/s", l => Num(Find(l, api, streams, rate)?.ProxyCpuMicrosPerChunk, "F1")));
            rows.Add(("  per round (µs, in run order)", l => Find(l, api, streams, rate) is { MicrosPerChunkByRound.Count: > 1 } t
                ? string.Join(" ", t.MicrosPerChunkByRound.Select(m => m.ToString("F1", CultureInfo.InvariantCulture)))
                : "-"));
            rows.Add(($"  chunks/s delivered (proxy cores busy)", l => Find(l, api, streams, rate) is { } t
                ? $"{t.ChunksPerSecond:F0}" + (t.ProxyCpuCores is { } c ? $" ({c:F2})" : "")
                : "-"));
        }

        rows.Add(("resume: reconnect → first replayed byte p50 / p99 (ms)", l => l.Resume?.ReplayFirstByteMs is { } r ? $"{r.P50:F2} / {r.P99:F2}" : "-"));
        rows.Add(("resume: memory per detached stream (KB)", l => l.Resume is { } r ? Num(r.KbPerDetachedStream, "F1") + $" @{r.DetachedStreams}" : "-"));
        rows.Add(("allocated per stream, besides its chunks (B)", l => Num(l.Allocations?.BytesPerStream, "F0")));
        rows.Add(("allocated per chunk (B)", l => Num(l.Allocations?.BytesPerChunk, "F0")));
        rows.Add(("idle resident memory (MB)", l => Num(l.IdleRssMb, "F1")));
        var levels = result.Legs.SelectMany(l => l.Memory).Select(m => m.RequestedStreams).Distinct().ToList();
        foreach (var level in levels)
        {
            rows.Add(($"memory per stream at {level} streams (KB)", l => l.Memory.FirstOrDefault(m => m.RequestedStreams == level) is { } m
                ? Num(m.KbPerStream, "F1") + (m.Streams != level ? $" @{m.Streams}" : "")
                : "-"));
        }

        rows.Add(("heap per live stream, slope after a full GC (B)", l => l.HeapPerStream is { } h
            ? $"{h.BytesPerStream:F0} ({h.LowStreams}→{h.HighStreams})"
            : "-"));
        rows.Add(("chunks lost / expected", l => $"{l.ChunksLost} / {l.ChunksExpected}"));
        rows.Add(("streams failed", l => l.FailedStreams.ToString(CultureInfo.InvariantCulture)));
        rows.Add(("mass abort: clients that vanished", l => l.MassAbort?.Streams.ToString(CultureInfo.InvariantCulture) ?? "-"));
        rows.Add(("  upstream still open after 100 ms", l => l.MassAbort?.OpenAfter100Ms.ToString(CultureInfo.InvariantCulture) ?? "-"));
        rows.Add(("  upstream still open after 500 ms", l => l.MassAbort?.OpenAfter500Ms.ToString(CultureInfo.InvariantCulture) ?? "-"));
        rows.Add(("  all upstream closed after (ms)", l => l.MassAbort is { } a ? Num(a.AllClosedAfterMs, "F0") : "-"));
        rows.Add(("  proxy CPU µs per vanished client", l => l.MassAbort is { } a ? Num(a.ProxyCpuMicrosPerStream, "F0") : "-"));

        rows.Add(("real server: tokens generated after the cancel decision mean / p50 / p99", l => l.RealServerTokensAfterCancel is { } r
            ? $"{r.Mean:F2} / {r.P50:F0} / {r.P99:F0}"
            : "-"));
        rows.Add(("  per round, in run order", l => l.RealServerTokensAfterCancelByRound.Count > 0
            ? string.Join(" ", l.RealServerTokensAfterCancelByRound.Select(t => t.ToString("0", CultureInfo.InvariantCulture)))
            : "-"));
        rows.Add(("  generated per cancelled stream, mean (rounds, failed)", l => l.RealServerTokensAfterCancel is { } r
            ? $"{Num(l.RealServerTokensGenerated, "F2")} ({r.Samples}, {l.RealServerFailures})"
            : l.RealServerFailures > 0 ? $"- (0, {l.RealServerFailures})" : "-"));

        var header = new[] { "figure" }.Concat(result.Legs.Select(l => l.Leg)).ToArray();
        var cells = rows.Select(r => new[] { r.Figure }.Concat(result.Legs.Select(r.Value)).ToArray()).ToList();
        var widths = header.Select((h, i) => Math.Max(h.Length, cells.Max(c => c[i].Length))).ToArray();
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture,
            $"{(result.Smoke ? "SMOKE run (tiny counts; figures are not meaningful)" : "bench run")} {result.StartedAt:u}, {result.ProcessorCount} cores, " +
            $"open-files limit {result.OpenFilesLimit}, nginx worker_processes {result.NginxWorkers}, cancelled streams at {result.CancelTokensPerSecond:0.#} tokens/s, {result.DurationSeconds:F0} s");
        Line(text, header, widths);
        Line(text, widths.Select(w => new string('-', w)).ToArray(), widths);
        foreach (var row in cells)
        {
            Line(text, row, widths);
        }

        if (result.Failover is { } failover)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"failover (gateway, a refused attempt before every request vs none): first token p50 / p99 {failover.WithOneFailedAttemptMs.P50:F3} / {failover.WithOneFailedAttemptMs.P99:F3} ms " +
                $"vs {failover.WithoutFailureMs.P50:F3} / {failover.WithoutFailureMs.P99:F3} ms; one failed attempt adds {failover.AddedP50Ms:F3} ms at p50, {failover.AddedP99Ms:F3} ms at p99 " +
                $"({failover.WithoutFailureMs.Samples} samples each, interleaved; {failover.RetriesCounted} of {failover.Requests} requests resent)");
        }

        if (result.RollingDeploy is { } rolling)
        {
            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture,
                $"rolling deploy (two gateways behind nginx, SIGTERM to one mid-stream, streams of {rolling.StreamSeconds:0.#} s): " +
                $"streams reset {rolling.StreamsReset} of {rolling.Streams} ({rolling.StreamsOnTerminated} on the terminated replica); " +
                $"requests during the drain failed {rolling.RequestsDuringDrainFailed} of {rolling.RequestsDuringDrain}; " +
                $"/readyz while leaving {rolling.ReadyzWhileDraining}; SIGTERM to exit {rolling.DrainSeconds:F1} s (exit code {rolling.ExitCode})");
            foreach (var problem in rolling.Problems)
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"  reset: {problem}");
            }
        }

        text.AppendLine();
        text.AppendLine("targets (gateway, every feature on):");
        foreach (var target in result.Targets)
        {
            var verdict = target.Covered ? "spread covers the target" : target.Met switch { true => "met", false => "NOT met", null => "not measured" };
            text.AppendLine(CultureInfo.InvariantCulture, $"  [{verdict}] {target.Target}: {target.Measured}");
        }

        foreach (var note in result.Notes)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"note: {note}");
        }

        return text.ToString();
    }

    private static ThroughputFigure? Find(LegResult leg, string api, int streams, double rate) =>
        leg.Throughput.FirstOrDefault(t => t.Api == api && t.Streams == streams && t.TokensPerSecond == rate);

    private static string Ms(double? value) => Num(value, "F3");

    private static string Rounds(CancelFigure? figure) => figure?.P50Rounds is { } p50 && figure.P99Rounds is { } p99
        ? $"{p50.Format("F2")} / {p99.Format("F2")}"
        : "-";

    private static string Num(double? value, string format) => value?.ToString(format, CultureInfo.InvariantCulture) ?? "-";

    private static void Line(StringBuilder text, string[] cells, int[] widths)
    {
        for (var i = 0; i < cells.Length; i++)
        {
            text.Append(i == 0 ? cells[i].PadRight(widths[i]) : "  " + cells[i].PadLeft(widths[i]));
        }

        text.AppendLine();
    }
}

internal static class Json
{
    private static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static string Serialize(BenchResult result) => JsonSerializer.Serialize(result, Options);
}
