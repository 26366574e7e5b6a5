using System.Globalization;

namespace Gateway.Bench;

/// <summary>Counts and durations of one run. Defaults make a full run of all four legs fit in about
/// ten minutes on two cores; <c>--smoke</c> shrinks everything to a few seconds per leg.</summary>
internal sealed class BenchOptions
{
    public bool Smoke { get; private set; }

    /// <summary>Where the JSON result is written (the table goes beside it as .txt).</summary>
    public string Out { get; private set; } = Path.Combine("artifacts", "bench", "results.json");

    /// <summary>Legs to run, in order; nginx is skipped when it is not installed.</summary>
    public List<string> Legs { get; private set; } = [LegNames.Direct, LegNames.Gateway, LegNames.PlainYarp, LegNames.Nginx];

    /// <summary>nginx <c>worker_processes</c>: <c>auto</c> (one per core, like the .NET proxies' thread pool) or a number.</summary>
    public string NginxWorkers { get; private set; } = "auto";

    /// <summary>Phases to run: first-token, cancel, throughput, memory (memory includes the mass abort), and
    /// real-server by default only when LLAMA_SERVER_BIN and LLAMA_MODEL are set.</summary>
    public List<string> Phases { get; private set; } = DefaultPhases();

    /// <summary>No <c>--phases</c> was given: the run says when it left out the real-server phase.</summary>
    public bool PhasesDefaulted { get; private set; } = true;

    /// <summary>Rounds per leg of the real-server phase (stream, 8 tokens, drop, count).</summary>
    public int RealServerRounds { get; private set; } = 20;

    public int DropSamples { get; private set; } = 200;

    /// <summary>Rounds the cancellation samples are split into; the legs take turns round by round (order reversed
    /// every other round), and each figure is the median of the rounds' medians with its interquartile range.</summary>
    public int CancelRounds { get; private set; } = 5;
    public int SupersedeSamples { get; private set; } = 200;
    public double CancelTokensPerSecond { get; private set; } = 50;
    public int FirstTokenSamples { get; private set; } = 300;

    /// <summary>First-token requests per leg with a 1 MB prompt.</summary>
    public int LargePromptSamples { get; private set; } = 100;

    /// <summary>The two throughput workloads: streams × tokens per second.</summary>
    public List<(int Streams, double TokensPerSecond)> Throughput { get; private set; } = [(500, 50), (4000, 5)];
    /// <summary>The APIs each throughput workload runs with (the mock speaks each).</summary>
    public List<string> ThroughputApis { get; private set; } = [.. Load.BenchApis.All];

    public TimeSpan ThroughputRamp { get; private set; } = TimeSpan.FromSeconds(2);
    public TimeSpan ThroughputWarmup { get; private set; } = TimeSpan.FromSeconds(2);
    public TimeSpan ThroughputWindow { get; private set; } = TimeSpan.FromSeconds(4);

    /// <summary>Rounds of the throughput workloads; the legs take turns in each round (order reversed
    /// every other round), so a slow minute of the machine falls on all of them alike.</summary>
    public int ThroughputRounds { get; private set; } = 3;

    public List<int> MemoryLevels { get; private set; } = [1000, 5000, 10000];
    public double MemoryTokensPerSecond { get; private set; } = 1;

    /// <summary>How long the memory phase's streams last, from the phase's start: they all end together.</summary>
    public TimeSpan MemoryHold { get; private set; } = TimeSpan.FromSeconds(35);
    public TimeSpan Settle { get; private set; } = TimeSpan.FromSeconds(1.5);

    public int MassAbortStreams { get; private set; } = 10000;

    /// <summary>Streams in each of the allocations phase's two batches.</summary>
    public int AllocationStreams { get; private set; } = 2000;

    /// <summary>Reconnects timed in the resume phase (each a stream opened, dropped after 3 events, and resumed).</summary>
    public int ResumeSamples { get; private set; } = 100;

    /// <summary>Streams held detached at once in the resume phase, for their memory.</summary>
    public int ResumeDetachedStreams { get; private set; } = 1000;

    /// <summary>Rolling deploy: streams open through nginx when one replica is sent SIGTERM, their tokens (at 10 a second).</summary>
    public int RollingStreams { get; private set; } = 8;
    public int RollingStreamTokens { get; private set; } = 300;
    public int RollingRequestsDuringDrain { get; private set; } = 10;

    /// <summary>Environment variables for the .NET proxies (gateway and plain YARP alike), for trying a
    /// runtime setting on both: <c>--proxy-env DOTNET_X=1</c>, repeatable.</summary>
    public Dictionary<string, string> ProxyEnvironment { get; } = new(StringComparer.Ordinal);

    /// <summary>Connections being opened at once while ramping up (the listen backlogs are 512).</summary>
    public int ConnectConcurrency { get; private set; } = 128;

    public static string Usage => """
        dotnet run -c Release --project tests/Gateway.Bench -- [flags]
          --smoke                     tiny counts, a few seconds per leg (what the test suite runs)
          --out PATH                  JSON result (default artifacts/bench/results.json; table beside it as .txt)
          --legs a,b,...              direct,gateway,plain-yarp,nginx (default: all; nginx only when installed)
          --phases a,b,...            first-token,cancel,throughput,allocations,resume,memory,failover,rolling-deploy,real-server (default: all; memory
                                      includes the mass abort; rolling-deploy needs nginx; real-server only when
                                      LLAMA_SERVER_BIN and LLAMA_MODEL are set)
          --real-server-rounds N      cancelled streams per leg against llama-server (default 20)
          --nginx-workers auto|N      nginx worker_processes (default auto)
          --drop-samples N            client-drop cancellations per leg (default 200)
          --cancel-rounds N           rounds the cancellations are split into, the legs taking turns (default 5)
          --supersede-samples N       supersedes through the gateway, each way (pooled, fresh connection; default 200)
          --cancel-rate TPS           token rate of the cancelled streams (default 50)
          --first-token-samples N     first-token requests per leg (default 300)
          --large-prompt-samples N    first-token requests per leg with a 1 MB prompt (default 100)
          --throughput S1xR1,S2xR2    streams x tokens/s for the CPU figure (default 500x50,4000x5)
          --apis A,B                  APIs each throughput workload runs with (default chat_completions,messages,responses)
          --window SECONDS            CPU measuring window (default 4)
          --rounds N                  throughput rounds, legs taking turns (default 3)
          --resume-samples N          reconnects with Last-Event-ID timed in the resume phase (default 100)
          --resume-detached N         streams held detached at once for their memory (default 1000)
          --memory-levels N1,N2,...   concurrent streams for the memory figure (default 1000,5000,10000)
          --memory-hold SECONDS       how long the memory phase's streams last (default 35)
          --mass-abort N              clients that vanish at once (default 10000)
          --rolling-streams N         streams open when one of two replicas behind nginx is sent SIGTERM (default 8)
          --rolling-tokens N          tokens of each, at 10 a second (default 300: 30 s streams)
          --proxy-env NAME=VALUE      an environment variable for both .NET proxies (repeatable)
        Stream counts above what the file-descriptor limit allows are lowered to fit, and the run says so.
        """;

    public static BenchOptions Parse(string[] args)
    {
        var options = new BenchOptions();
        if (args.Contains("--smoke"))
        {
            options.ApplySmoke();
        }

        for (var i = 0; i < args.Length; i++)
        {
            var name = args[i];
            if (name == "--smoke")
            {
                continue;
            }

            if (i + 1 >= args.Length)
            {
                throw new ArgumentException($"{name} needs a value.");
            }

            var value = args[++i];
            switch (name)
            {
                case "--out": options.Out = value; break;
                case "--legs": options.Legs = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)]; break;
                case "--phases":
                    options.Phases = [.. value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)];
                    options.PhasesDefaulted = false;
                    break;
                case "--real-server-rounds": options.RealServerRounds = Int(value, name); break;
                case "--nginx-workers": options.NginxWorkers = value; break;
                case "--drop-samples": options.DropSamples = Int(value, name); break;
                case "--cancel-rounds": options.CancelRounds = Int(value, name); break;
                case "--supersede-samples": options.SupersedeSamples = Int(value, name); break;
                case "--cancel-rate": options.CancelTokensPerSecond = Double(value, name); break;
                case "--first-token-samples": options.FirstTokenSamples = Int(value, name); break;
                case "--large-prompt-samples": options.LargePromptSamples = Int(value, name); break;
                case "--throughput": options.Throughput = [.. value.Split(',').Select(w => ParseWorkload(w, name))]; break;
                case "--apis": options.ThroughputApis = [.. value.Split(',').Select(a => Api(a, name))]; break;
                case "--window": options.ThroughputWindow = TimeSpan.FromSeconds(Double(value, name)); break;
                case "--rounds": options.ThroughputRounds = Int(value, name); break;
                case "--memory-levels": options.MemoryLevels = [.. value.Split(',').Select(v => Int(v, name))]; break;
                case "--memory-hold": options.MemoryHold = TimeSpan.FromSeconds(Double(value, name)); break;
                case "--mass-abort": options.MassAbortStreams = Int(value, name); break;
                case "--allocation-streams": options.AllocationStreams = Int(value, name); break;
                case "--resume-samples": options.ResumeSamples = Int(value, name); break;
                case "--resume-detached": options.ResumeDetachedStreams = Int(value, name); break;
                case "--rolling-streams": options.RollingStreams = Int(value, name); break;
                case "--rolling-tokens": options.RollingStreamTokens = Int(value, name); break;
                case "--proxy-env":
                    var equals = value.IndexOf('=', StringComparison.Ordinal);
                    if (equals < 1)
                    {
                        throw new ArgumentException($"{name} wants NAME=VALUE, got '{value}'.");
                    }

                    options.ProxyEnvironment[value[..equals]] = value[(equals + 1)..];
                    break;
                default: throw new ArgumentException($"Unknown flag {name}.");
            }
        }

        foreach (var leg in options.Legs)
        {
            if (!LegNames.All.Contains(leg))
            {
                throw new ArgumentException($"Unknown leg {leg}; legs are {string.Join(",", LegNames.All)}.");
            }
        }

        return options;
    }

    private void ApplySmoke()
    {
        Smoke = true;
        Out = Path.Combine("artifacts", "bench", "smoke.json");
        DropSamples = 4;
        CancelRounds = 2;
        SupersedeSamples = 4;
        FirstTokenSamples = 10;
        LargePromptSamples = 4;
        Throughput = [(20, 50), (40, 5)];
        ThroughputRamp = TimeSpan.FromSeconds(0.2);
        ThroughputWarmup = TimeSpan.FromSeconds(0.3);
        ThroughputWindow = TimeSpan.FromSeconds(0.6);
        ThroughputRounds = 1;
        MemoryLevels = [20, 50, 100];
        MemoryTokensPerSecond = 5;
        MemoryHold = TimeSpan.FromSeconds(5); // room for a full collection induced at each level
        Settle = TimeSpan.FromSeconds(0.2);
        MassAbortStreams = 100;
        RealServerRounds = 2;
        RollingStreams = 2;
        RollingStreamTokens = 20;
        RollingRequestsDuringDrain = 2;
    }

    private static List<string> DefaultPhases()
    {
        List<string> phases = ["first-token", "cancel", "throughput", "allocations", "resume", "memory", "failover", "rolling-deploy"];
        if (Upstream.LlamaServerProcess.Configured)
        {
            phases.Add("real-server");
        }

        return phases;
    }

    private static (int, double) ParseWorkload(string text, string flag)
    {
        var parts = text.Split('x');
        return parts.Length == 2 ? (Int(parts[0], flag), Double(parts[1], flag)) : throw new ArgumentException($"{flag}: expected STREAMSxRATE, got {text}.");
    }

    private static string Api(string text, string flag) =>
        Load.BenchApis.All.Contains(text) ? text : throw new ArgumentException($"{flag}: '{text}' is not one of {string.Join(", ", Load.BenchApis.All)}.");

    private static int Int(string text, string flag) =>
        int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"{flag}: {text} is not a positive integer.");

    private static double Double(string text, string flag) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new ArgumentException($"{flag}: {text} is not a positive number.");
}

internal static class LegNames
{
    public const string Direct = "direct";
    public const string Gateway = "gateway";
    public const string PlainYarp = "plain-yarp";
    public const string Nginx = "nginx";

    public static readonly string[] All = [Direct, Gateway, PlainYarp, Nginx];
}
