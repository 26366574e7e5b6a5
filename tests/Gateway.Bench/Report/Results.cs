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

/// <summary>One way of cancelling, through one leg: decision → old upstream closed, the tokens the mock wrote after the
/// decision (mean), and for a supersede where the time went: the newer request's connect (fresh connections
/// only) and when the newer request reached the mock after the old one had ended.</summary>
/// <param name="P50ByRound">Each round's median, in run order (the legs take turns round by round).</param>
/// <param name="P50Rounds">The median of <paramref name="P50ByRound"/> with its interquartile range: the figure a target is judged on.</param>
/// <param name="P99Rounds">The same for each round's p99.</param>
internal sealed record CancelFigure(Percentiles? Ms, double? WastedTokens, Percentiles? ConnectMs, Percentiles? NewerArrivedAfterMs,
    IReadOnlyList<double>? P50ByRound = null, Spread? P50Rounds = null, Spread? P99Rounds = null);

/// <summary>The median of a few figures (one a round) and their interquartile range (linear interpolation).</summary>
internal sealed record Spread(double Median, double Q1, double Q3, int Rounds)
{
    public static Spread? Of(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return null;
        }

        var sorted = values.Order().ToArray();
        return new Spread(Quantile(sorted, 0.5), Quantile(sorted, 0.25), Quantile(sorted, 0.75), sorted.Length);
    }

    /// <summary>A fixed bound, as a range of no width.</summary>
    public static Spread Exactly(double value) => new(value, value, value, 0);

    public Spread Plus(double allowance) => this with { Median = Median + allowance, Q1 = Q1 + allowance, Q3 = Q3 + allowance };

    /// <summary>True when this whole interquartile range is at or below <paramref name="bound"/>'s; false when all of it is
    /// above; null when the two overlap (the spread covers the target).</summary>
    public bool? AtMost(Spread bound) => Q3 <= bound.Q1 ? true : Q1 > bound.Q3 ? false : null;

    public string Format(string format) =>
        $"{Median.ToString(format, System.Globalization.CultureInfo.InvariantCulture)} [{Q1.ToString(format, System.Globalization.CultureInfo.InvariantCulture)}–{Q3.ToString(format, System.Globalization.CultureInfo.InvariantCulture)}]";

    private static double Quantile(double[] sorted, double p)
    {
        var position = p * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + ((sorted[high] - sorted[low]) * (position - low));
    }
}

/// <summary>One measuring window of one workload through one leg.</summary>
internal sealed record ThroughputSample(long Chunks, double WindowSeconds, long? CpuTicks);

/// <summary>A workload's figures over all its rounds: CPU and chunks summed over the windows, so
/// each round weighs by what it delivered; the per-round figures show the spread.</summary>
internal sealed record ThroughputFigure(
    string Api, int Streams, double TokensPerSecond, long Chunks, double WindowSeconds, double ChunksPerSecond, double? ProxyCpuMicrosPerChunk, double? ProxyCpuCores,
    IReadOnlyList<double> MicrosPerChunkByRound);

/// <summary>The resume phase: a reconnect with Last-Event-ID until its first replayed byte, and the resident memory
/// each stream detached (its client gone, the upstream generating into its log) adds to the idle process.</summary>
internal sealed record ResumeFigure(Percentiles? ReplayFirstByteMs, int Failures, int DetachedStreams, double? KbPerDetachedStream);

/// <param name="HeapMb">.NET proxies: the managed heap that survived a full collection induced at this level
/// (<see cref="Proxies.HeapProbe"/>), read after <paramref name="RssMb"/>.</param>
internal sealed record MemoryFigure(int RequestedStreams, int Streams, double RssMb, double? KbPerStream, double? HeapMb = null);

/// <summary>Managed heap per live stream: the slope of the heap after a full collection between the two highest
/// levels of held streams, so what the process holds whatever its streams (code, caches, pools) falls out.</summary>
internal sealed record HeapSlopeFigure(int LowStreams, int HighStreams, double LowHeapMb, double HighHeapMb, double BytesPerStream);

/// <param name="ProxyCpuMicrosPerStream">The proxy's CPU time from the first close until every upstream
/// request had ended, per vanished client: what one abort costs the proxy.</param>
internal sealed record MassAbortFigure(int Streams, int OpenAfter100Ms, int OpenAfter500Ms, double? AllClosedAfterMs, double CloseLoopMs,
    double? ProxyCpuMicrosPerStream = null);

/// <summary>Everything measured for one way of reaching the upstream.</summary>
internal sealed class LegResult(string leg)
{
    public string Leg { get; } = leg;
    public CancelFigure? ClientDrop { get; set; }

    /// <summary>A newer request on a connection opened before the decision.</summary>
    public CancelFigure? Supersede { get; set; }

    /// <summary>A newer request on a TCP connection opened after the decision (the connect is timed).</summary>
    public CancelFigure? SupersedeFresh { get; set; }
    public int CancelFailures { get; set; }
    public Percentiles? FirstTokenMs { get; set; }
    public double? FirstTokenHopP50Ms { get; set; }
    public double? FirstTokenHopP99Ms { get; set; }

    /// <summary>Time to first token when the request carries a 1 MB prompt (the body streams through to the mock).</summary>
    public Percentiles? LargePromptFirstTokenMs { get; set; }
    public List<ThroughputFigure> Throughput { get; } = [];

    /// <summary>Windows measured so far, by workload, before they are summed into <see cref="Throughput"/>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Dictionary<(string Api, int Streams, double Rate), List<ThroughputSample>> ThroughputSamples { get; } = [];

    /// <summary>Reconnect → first replayed byte, and resident memory per detached stream (the resume phase, gateway only).</summary>
    public ResumeFigure? Resume { get; set; }

    /// <summary>Bytes the proxy process allocated per stream and per chunk (the allocations phase).</summary>
    public AllocationFigure? Allocations { get; set; }

    public double? IdleRssMb { get; set; }
    public List<MemoryFigure> Memory { get; } = [];

    /// <summary>Managed heap per live stream, the slope between the two top memory levels (.NET proxies).</summary>
    public HeapSlopeFigure? HeapPerStream { get; set; }
    public long ChunksExpected { get; set; }
    public long ChunksLost { get; set; }
    public int FailedStreams { get; set; }
    public MassAbortFigure? MassAbort { get; set; }

    /// <summary>Against a real llama-server: tokens it generated for a cancelled stream after the
    /// client's cancel decision (its own count for the request minus the content tokens the client had
    /// received when it dropped), one sample per round.</summary>
    public Percentiles? RealServerTokensAfterCancel { get; set; }

    /// <summary>The same, round by round in run order: where the tail came from.</summary>
    public List<double> RealServerTokensAfterCancelByRound { get; set; } = [];

    /// <summary>Mean of the server's own count of tokens generated per cancelled stream.</summary>
    public double? RealServerTokensGenerated { get; set; }

    /// <summary>Rounds that gave no sample (the answer ended before 8 tokens, a timeout, an error).</summary>
    public int RealServerFailures { get; set; }
}

/// <param name="Covered">Measured, but the interquartile range of the rounds straddles the target: neither met nor missed.</param>
internal sealed record TargetCheck(string Target, string Measured, bool? Met, bool Covered = false);

/// <summary>The failover phase: first token through the gateway as shipped, and through one whose every request first
/// meets a destination that refuses (one failed attempt, then the mock); the added latency at p50 and p99.</summary>
internal sealed record FailoverFigure(Percentiles WithoutFailureMs, Percentiles WithOneFailedAttemptMs, double AddedP50Ms, double AddedP99Ms,
    long RetriesCounted, int Requests);

/// <summary>The rolling-deploy phase: of <paramref name="Streams"/> open through nginx, how many a replica's
/// SIGTERM reset (<paramref name="StreamsReset"/>: any stream without its end mark and every generated token), and
/// how long that replica took from SIGTERM to its exit.</summary>
internal sealed record RollingDeployFigure(
    int Streams,
    int StreamsReset,
    int StreamsOnTerminated,
    double StreamSeconds,
    int RequestsDuringDrain,
    int RequestsDuringDrainFailed,
    int ReadyzWhileDraining,
    double DrainSeconds,
    int ExitCode,
    List<string> Problems);

internal sealed class BenchResult
{
    public DateTimeOffset StartedAt { get; init; }
    public bool Smoke { get; init; }
    public int ProcessorCount { get; init; } = Environment.ProcessorCount;

    /// <summary>The processor's model and the memory, from <c>/proc</c>: which machine the figures are from.</summary>
    public string Machine { get; init; } = Proxies.ProcessStats.MachineDescription();
    public long OpenFilesLimit { get; init; }
    public int MaxStreams { get; init; }
    public string NginxWorkers { get; init; } = "";
    public double CancelTokensPerSecond { get; init; }
    public List<LegResult> Legs { get; } = [];
    public List<TargetCheck> Targets { get; } = [];
    public List<string> Notes { get; } = [];
    public double DurationSeconds { get; set; }

    public RollingDeployFigure? RollingDeploy { get; set; }

    public FailoverFigure? Failover { get; set; }

    public LegResult? this[string leg] => Legs.FirstOrDefault(l => l.Leg == leg);
}

internal static class ThroughputFigures
{
    public static ThroughputFigure Sum(string api, int streams, double rate, IReadOnlyList<ThroughputSample> samples)
    {
        var chunks = samples.Sum(s => s.Chunks);
        var seconds = samples.Sum(s => s.WindowSeconds);
        long? ticks = samples.All(s => s.CpuTicks is not null) ? samples.Sum(s => s.CpuTicks!.Value) : null;
        double? micros = ticks is { } t && chunks > 0 ? t / Proxies.ProcessStats.TicksPerSecond * 1e6 / chunks : null;
        double? cores = ticks is { } u && seconds > 0 ? u / Proxies.ProcessStats.TicksPerSecond / seconds : null;
        var byRound = samples
            .Where(s => s.CpuTicks is not null && s.Chunks > 0)
            .Select(s => s.CpuTicks!.Value / Proxies.ProcessStats.TicksPerSecond * 1e6 / s.Chunks)
            .ToList();
        return new ThroughputFigure(api, streams, rate, chunks, seconds, seconds > 0 ? chunks / seconds : 0, micros, cores, byRound);
    }
}

/// <summary>Allocated bytes: a short and a long stream's, the slope between them (per chunk), and what a stream costs besides its chunks.</summary>
internal sealed record AllocationFigure(int Streams, double ShortStreamBytes, double LongStreamBytes, double BytesPerChunk, double BytesPerStream);
