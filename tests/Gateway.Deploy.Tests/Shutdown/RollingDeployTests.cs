using Gateway.Deploy.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Deploy.Tests.Shutdown;

/// <summary>
/// A rolling deploy with no stream reset: two gateway processes behind a real nginx on loopback, streams of
/// 30 s through it, one replica sent SIGTERM mid-stream. Every stream on it finishes whole (its end mark, every
/// token the mock's ledger says was generated), no client sees a reset or an error event, requests made while
/// it drains reach the other replica and succeed, and its <c>/readyz</c> answers 503 while it leaves rotation.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class RollingDeployTests
{
    [Fact]
    public async Task SigtermOneReplicaMidStream_EveryStreamFinishesWhole_NewRequestsReachTheOther()
    {
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 10, TimeToFirstTokenMs = 10 });
        var work = Directory.CreateTempSubdirectory("rolling-deploy-");
        try
        {
            var options = new RollingDeploy.Options(Streams: 8, StreamTokens: 300, TokensPerSecond: 10, TerminateAtTokens: 30);

            var result = await RollingDeploy.RunAsync(mock, options, work.FullName, TimeSpan.FromSeconds(90));

            Assert.True(result.StreamsOnTerminated >= 1,
                $"nginx sent none of the {options.Streams} streams to the replica that was terminated: the test proved nothing");
            Assert.All(result.Streams, s => Assert.True(s.Whole, $"{s.Session}: {s.Problem}"));
            Assert.All(result.Streams, s => Assert.Equal(options.StreamTokens, s.TokensGenerated));
            Assert.Equal(0, result.StreamsReset);
            Assert.Equal(503, result.ReadyzWhileDelayed);
            Assert.Equal(Enumerable.Repeat(200, options.RequestsDuringDrain), result.DrainRequestStatuses);
            Assert.Equal(options.RequestsDuringDrain, result.DrainRequestsWhole);
            Assert.True(result.ExitCode == 0, $"the terminated replica exited with {result.ExitCode}:\n{result.TerminatedOutput}");
            Assert.DoesNotContain("Drain deadline passed", result.TerminatedOutput, StringComparison.Ordinal);
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
