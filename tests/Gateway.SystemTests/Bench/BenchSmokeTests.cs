using System.Text.Json;

namespace Gateway.Tests.Bench;

/// <summary>
/// The benchmark's smoke mode, run as the bench runs by hand (its own process, the gateway and plain
/// YARP as child processes, nginx when installed, llama-server for the real-server phase), so the bench
/// cannot rot. Asserts that it completes, loses no chunk and produces every figure; never a duration or
/// a ratio.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class BenchSmokeTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(5);

    [Fact]
    public async Task SmokeRun_AllLegs_EveryFigureAndNoChunkLost()
    {
        // The smoke run includes the real-server phase, which needs llama-server and its model;
        // tests/run exports both, so a missing one is a broken set-up, not a reason to skip.
        Assert.False(
            string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LLAMA_SERVER_BIN")) || string.IsNullOrEmpty(Environment.GetEnvironmentVariable("LLAMA_MODEL")),
            "LLAMA_SERVER_BIN and LLAMA_MODEL are not set, and the bench smoke run includes the real-server phase: run tests/real-server/build " +
            "(tests/run does, and exports them), or export what it prints before dotnet test: eval \"$(tests/real-server/build)\"; export LLAMA_SERVER_BIN LLAMA_MODEL");
        using var directory = new TempFolder("bench-smoke-");
        var outPath = Path.Combine(directory.Path, "smoke.json");
        var (exitCode, output) = await RunBenchAsync("--smoke", "--out", outPath, "--proxy-env", "DOTNET_gcServer=1");
        Assert.True(exitCode == 0, $"bench exited with {exitCode}:\n{output}");

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(outPath));
        var legs = json.RootElement.GetProperty("legs").EnumerateArray().ToDictionary(l => l.GetProperty("leg").GetString()!);
        var expected = new List<string> { "direct", "gateway", "plain-yarp" };
        if (File.Exists("/usr/sbin/nginx"))
        {
            expected.Add("nginx");
        }

        Assert.Equal(expected, legs.Keys);
        foreach (var (name, leg) in legs)
        {
            Assert.True(leg.GetProperty("chunksExpected").GetInt64() > 0, $"{name}: no chunk was checked");
            Assert.True(leg.GetProperty("chunksLost").GetInt64() == 0, $"{name} lost chunks:\n{output}");
            Assert.True(leg.GetProperty("failedStreams").GetInt32() == 0, $"{name} had failed streams:\n{output}");
            Assert.True(leg.GetProperty("cancelFailures").GetInt32() == 0, $"{name} had cancellations that did not land:\n{output}");
            Assert.Equal(4, Percentiles(leg.GetProperty("clientDrop"), "ms").GetProperty("samples").GetInt32());
            Assert.Equal(2, leg.GetProperty("clientDrop").GetProperty("p50Rounds").GetProperty("rounds").GetInt32()); // interleaved rounds
            Assert.NotEqual(JsonValueKind.Null, leg.GetProperty("clientDrop").GetProperty("wastedTokens").ValueKind);
            Assert.Equal(10, Percentiles(leg, "firstTokenMs").GetProperty("samples").GetInt32());
            Assert.Equal(4, Percentiles(leg, "largePromptFirstTokenMs").GetProperty("samples").GetInt32());
            // Two workloads for each of Chat Completions, Messages and Responses.
            Assert.Equal(6, leg.GetProperty("throughput").GetArrayLength());
            Assert.Equal(["chat_completions", "messages", "responses"],
                leg.GetProperty("throughput").EnumerateArray().Select(t => t.GetProperty("api").GetString()).Distinct().Order());
            Assert.Equal(3, leg.GetProperty("memory").GetArrayLength());
            var abort = leg.GetProperty("massAbort");
            Assert.Equal(100, abort.GetProperty("streams").GetInt32());
            Assert.True(abort.GetProperty("openAfter100Ms").GetInt32() >= 0);
            Assert.True(abort.GetProperty("openAfter500Ms").GetInt32() >= 0);
            Assert.True(leg.GetProperty("realServerFailures").GetInt32() == 0, $"{name} had real-server rounds without a sample:\n{output}");
            Assert.Equal(2, Percentiles(leg, "realServerTokensAfterCancel").GetProperty("samples").GetInt32());
            Assert.Equal(2, leg.GetProperty("realServerTokensAfterCancelByRound").GetArrayLength());
            Assert.NotEqual(JsonValueKind.Null, leg.GetProperty("realServerTokensGenerated").ValueKind);
            if (name == "direct")
            {
                continue;
            }

            Assert.NotEqual(JsonValueKind.Null, leg.GetProperty("firstTokenHopP50Ms").ValueKind);
            Assert.NotEqual(JsonValueKind.Null, leg.GetProperty("firstTokenHopP99Ms").ValueKind);
            Assert.NotEqual(JsonValueKind.Null, leg.GetProperty("idleRssMb").ValueKind);
            foreach (var figure in leg.GetProperty("throughput").EnumerateArray())
            {
                Assert.NotEqual(JsonValueKind.Null, figure.GetProperty("proxyCpuMicrosPerChunk").ValueKind);
            }

            foreach (var level in leg.GetProperty("memory").EnumerateArray())
            {
                Assert.NotEqual(JsonValueKind.Null, level.GetProperty("kbPerStream").ValueKind);
                if (name is "gateway" or "plain-yarp")
                {
                    // Read through EventPipe after a full collection induced in the proxy (Proxies/HeapProbe).
                    Assert.True(level.GetProperty("heapMb").GetDouble() > 0, $"{name}: no heap figure:\n{output}");
                }
            }

            if (name is "gateway" or "plain-yarp")
            {
                Assert.Equal(JsonValueKind.Number, leg.GetProperty("heapPerStream").GetProperty("bytesPerStream").ValueKind);
            }
        }

        var gateway = legs["gateway"];
        Assert.Equal(4, Percentiles(gateway.GetProperty("supersede"), "ms").GetProperty("samples").GetInt32());
        Assert.NotEqual(JsonValueKind.Null, gateway.GetProperty("supersede").GetProperty("wastedTokens").ValueKind);
        var fresh = gateway.GetProperty("supersedeFresh");
        Assert.Equal(4, Percentiles(fresh, "ms").GetProperty("samples").GetInt32());
        Assert.Equal(4, Percentiles(fresh, "connectMs").GetProperty("samples").GetInt32());
        Assert.Equal(4, Percentiles(fresh, "newerArrivedAfterMs").GetProperty("samples").GetInt32());
        Assert.NotEmpty(json.RootElement.GetProperty("targets").EnumerateArray());
        Assert.Contains(json.RootElement.GetProperty("targets").EnumerateArray(),
            t => t.GetProperty("target").GetString()!.StartsWith("real server:", StringComparison.Ordinal) && t.GetProperty("met").ValueKind != JsonValueKind.Null);
        Assert.Contains(json.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString() == "both .NET proxies ran with DOTNET_gcServer=1.");
        var failover = json.RootElement.GetProperty("failover");
        Assert.Equal(10, failover.GetProperty("withOneFailedAttemptMs").GetProperty("samples").GetInt32());
        Assert.Equal(10, failover.GetProperty("withoutFailureMs").GetProperty("samples").GetInt32());
        Assert.Equal(failover.GetProperty("requests").GetInt32(), failover.GetProperty("retriesCounted").GetInt64());
        if (File.Exists("/usr/sbin/nginx"))
        {
            var rolling = json.RootElement.GetProperty("rollingDeploy");
            Assert.True(rolling.ValueKind == JsonValueKind.Object, $"the rolling-deploy phase gave no figure:\n{output}");
            Assert.Equal(2, rolling.GetProperty("streams").GetInt32());
            Assert.True(rolling.GetProperty("streamsReset").GetInt32() == 0, $"a rolling deploy reset streams:\n{output}");
            Assert.Equal(2, rolling.GetProperty("requestsDuringDrain").GetInt32());
            Assert.Equal(0, rolling.GetProperty("requestsDuringDrainFailed").GetInt32());
            Assert.True(rolling.GetProperty("drainSeconds").GetDouble() > 0);
        }
        Assert.True(File.Exists(Path.ChangeExtension(outPath, ".txt")), "the table was not written");
    }

    [Theory]
    [InlineData("--proxy-env", "NO_EQUALS_SIGN", "wants NAME=VALUE")]
    [InlineData("--proxy-env", "=value", "wants NAME=VALUE")]
    [InlineData("--rounds", "three", "--rounds")]
    [InlineData("--legs", "direct,haproxy", "Unknown leg haproxy")]
    [InlineData("--frobnicate", "1", "Unknown flag --frobnicate")]
    [InlineData("--apis", "chat_completions,grpc", "is not one of")]
    public async Task BadFlag_ExitsWith2_NamesTheProblem_RunsNothing(string flag, string value, string expected)
    {
        var (exitCode, output) = await RunBenchAsync(flag, value, "--out", Path.Combine(Path.GetTempPath(), "bench-bad-flag-never-written.json"));

        Assert.Equal(2, exitCode);
        Assert.Contains(expected, output, StringComparison.Ordinal);
        Assert.Contains("--proxy-env NAME=VALUE", output, StringComparison.Ordinal); // the usage follows
        Assert.DoesNotContain("bench: wrote", output, StringComparison.Ordinal);
    }

    private const string TableStart = "<!-- bench-table: generated by `Gateway.Bench --readme-table`; edit the bench, not this table -->";
    private const string TableEnd = "<!-- /bench-table -->";

    [Fact]
    public async Task ReadmeTable_FromAResult_ReplacesOnlyTheMarkedBlock_FiguresWithSpread_TextFromTheJsonMadeSafe()
    {
        using var directory = new TempFolder("bench-readme-");
        var results = Path.Combine(directory.Path, "results.json");
        await File.WriteAllTextAsync(results, """
            {"startedAt":"2026-12-08T00:40:00+00:00","machine":"AMD EPYC, 24 GiB","processorCount":2,"openFilesLimit":20000,"durationSeconds":1200,
             "legs":[{"leg":"gateway","clientDrop":{"p50Rounds":{"median":0.6049,"q1":0.588,"q3":0.681,"rounds":5}},
                      "throughput":[{"api":"messages","streams":500,"tokensPerSecond":50,"proxyCpuMicrosPerChunk":35.04,"microsPerChunkByRound":[34.1,36.2,35.0]}],
                      "heapPerStream":{"bytesPerStream":42006.4}},
                     {"leg":"plain-yarp","clientDrop":{"p50Rounds":{"median":0.62,"q1":0.61,"q3":0.67,"rounds":5}}}],
             "targets":[{"target":"a|b\n<img src=x>","measured":"1 ms","met":null,"covered":true},{"target":"t2","measured":"2","met":false,"covered":false}]}
            """);
        var readme = Path.Combine(directory.Path, "README.md");
        await File.WriteAllTextAsync(readme, $"before\n{TableStart}\nhand-written figures\n{TableEnd}\nafter\n");

        var (exitCode, output) = await RunBenchAsync("--readme-table", results, "--into", readme);

        Assert.True(exitCode == 0, output);
        var text = await File.ReadAllTextAsync(readme);
        Assert.StartsWith($"before\n{TableStart}\n", text, StringComparison.Ordinal);
        Assert.EndsWith($"{TableEnd}\nafter\n", text, StringComparison.Ordinal);
        Assert.DoesNotContain("hand-written figures", text, StringComparison.Ordinal);
        Assert.Contains("run of 2026-12-08 00:40 UTC, 20 minutes, on AMD EPYC, 24 GiB, 2 cores", text, StringComparison.Ordinal);
        Assert.Contains("| client drop → upstream closed p50 (ms) | 0.60 [0.59–0.68] | 0.62 [0.61–0.67] |", text, StringComparison.Ordinal);
        Assert.Contains("| proxy CPU per chunk, messages 500 × 50/s (µs) | 35.0 [34.1–36.2] | - |", text, StringComparison.Ordinal);
        Assert.Contains("| heap per live stream, after a full GC (B) | 42006 | - |", text, StringComparison.Ordinal);
        Assert.Contains("- spread covers the target: a/b ‹img src=x›: 1 ms", text, StringComparison.Ordinal);
        Assert.Contains("- **not met**: t2: 2", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"legs\":[{\"leg\":\"gateway\"}]}", "no markers here\n", "must hold the start marker")]
    [InlineData("{\"legs\": [", "MARKERS", "is not a bench result")]
    [InlineData("[1,2,3]", "MARKERS", "is not a bench result")]
    [InlineData("{\"legs\":[{\"leg\":\"gateway\",\"throughput\":[{\"api\":7}]}]}", "MARKERS", "is not a bench result")]
    public async Task ReadmeTable_BadResultOrFile_ExitsWith2_FileUnchanged(string json, string file, string expected)
    {
        using var directory = new TempFolder("bench-readme-bad-");
        var results = Path.Combine(directory.Path, "results.json");
        await File.WriteAllTextAsync(results, json);
        var readme = Path.Combine(directory.Path, "README.md");
        var before = file == "MARKERS" ? $"{TableStart}\nkept\n{TableEnd}\n" : file;
        await File.WriteAllTextAsync(readme, before);

        var (exitCode, output) = await RunBenchAsync("--readme-table", results, "--into", readme);

        Assert.Equal(2, exitCode);
        Assert.Contains(expected, output, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllTextAsync(readme));
    }

    private static JsonElement Percentiles(JsonElement leg, string name)
    {
        var value = leg.GetProperty(name);
        Assert.Equal(JsonValueKind.Object, value.ValueKind);
        return value;
    }

    /// <summary>A folder of the test's own under the temp directory, deleted with what it holds.</summary>
    private sealed class TempFolder(string prefix) : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }

    private static async Task<(int ExitCode, string Output)> RunBenchAsync(params string[] args)
    {
        await using var bench = DotnetProcess.Start("Gateway.Bench.dll", args);
        return (await bench.WaitForExitAsync(Timeout), bench.Output);
    }
}
