namespace Gateway.Bench.Report;

/// <summary>p50 and p99 (nearest rank) of a set of samples, in milliseconds unless named otherwise.</summary>
internal sealed record Percentiles(double P50, double P99, double Mean, int Samples)
{
    public static Percentiles? Of(IReadOnlyCollection<double> samples)
    {
        if (samples.Count == 0)
        {
            return null;
        }

        var sorted = samples.Order().ToArray();
        return new Percentiles(Rank(sorted, 0.50), Rank(sorted, 0.99), sorted.Average(), sorted.Length);
    }

    private static double Rank(double[] sorted, double p) => sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
}

internal sealed record ThroughputFigure(
    int Streams, double TokensPerSecond, long Chunks, double WindowSeconds, double ChunksPerSecond, double? ProxyCpuMicrosPerChunk, double? ProxyCpuCores);

internal sealed record MemoryFigure(int RequestedStreams, int Streams, double RssMb, double? KbPerStream);

internal sealed record MassAbortFigure(int Streams, int OpenAfter100Ms, int OpenAfter500Ms, double? AllClosedAfterMs, double CloseLoopMs);

/// <summary>Everything measured for one way of reaching the upstream.</summary>
internal sealed class LegResult(string leg)
{
    public string Leg { get; } = leg;
    public Percentiles? ClientDropMs { get; set; }
    public double? ClientDropWastedTokens { get; set; }
    public Percentiles? SupersedeMs { get; set; }
    public double? SupersedeWastedTokens { get; set; }
    public int CancelFailures { get; set; }
    public Percentiles? FirstTokenMs { get; set; }
    public double? FirstTokenHopP50Ms { get; set; }
    public double? FirstTokenHopP99Ms { get; set; }
    public List<ThroughputFigure> Throughput { get; } = [];
    public double? IdleRssMb { get; set; }
    public List<MemoryFigure> Memory { get; } = [];
    public long ChunksExpected { get; set; }
    public long ChunksLost { get; set; }
    public int FailedStreams { get; set; }
    public MassAbortFigure? MassAbort { get; set; }
}

internal sealed record TargetCheck(string Target, string Measured, bool? Met);

internal sealed class BenchResult
{
    public DateTimeOffset StartedAt { get; init; }
    public bool Smoke { get; init; }
    public int ProcessorCount { get; init; } = Environment.ProcessorCount;
    public long OpenFilesLimit { get; init; }
    public int MaxStreams { get; init; }
    public string NginxWorkers { get; init; } = "";
    public double CancelTokensPerSecond { get; init; }
    public List<LegResult> Legs { get; } = [];
    public List<TargetCheck> Targets { get; } = [];
    public List<string> Notes { get; } = [];
    public double DurationSeconds { get; set; }

    public LegResult? this[string leg] => Legs.FirstOrDefault(l => l.Leg == leg);
}
