using Gateway.Bench.Proxies;
using Gateway.Bench.Report;
using Gateway.Testing;
using MockLlm;

namespace Gateway.Bench;

/// <summary>The rolling-deploy phase: streams lost when one of two replicas behind nginx is replaced mid-stream.</summary>
internal sealed partial class BenchRun
{
    /// <summary>
    /// Two gateway processes with the shipped settings behind nginx, <see cref="BenchOptions.RollingStreams"/> long
    /// streams through it, one replica sent SIGTERM mid-stream (the shared <see cref="RollingDeploy"/> scenario the
    /// deploy test asserts on). Its own mock, at the scenario's token rate, so the other phases' figures are untouched.
    /// </summary>
    private async Task RollingDeployAsync()
    {
        if (!ProxyProcess.NginxInstalled)
        {
            _result.Notes.Add("rolling deploy: nginx is not installed (apt-get install nginx-light): the phase was skipped.");
            return;
        }

        var options = new RollingDeploy.Options(
            Streams: _options.RollingStreams,
            StreamTokens: _options.RollingStreamTokens,
            TokensPerSecond: RollingTokensPerSecond,
            TerminateAtTokens: Math.Max(1, _options.RollingStreamTokens / 10),
            RequestsDuringDrain: _options.RollingRequestsDuringDrain,
            DrainTimeout: "00:05:00",
            ReadinessDelay: _options.Smoke ? "00:00:01" : "00:00:05");
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = RollingTokensPerSecond, TimeToFirstTokenMs = 10 });
        Console.WriteLine($"bench: rolling deploy, {options.Streams} streams of {options.StreamTokens / RollingTokensPerSecond:F0} s behind nginx, SIGTERM to one of two replicas");
        var run = await RollingDeploy.RunAsync(mock, options, _logDirectory, TimeSpan.FromMinutes(2));
        _result.RollingDeploy = new RollingDeployFigure(
            run.Streams.Count,
            run.StreamsReset,
            run.StreamsOnTerminated,
            options.StreamTokens / RollingTokensPerSecond,
            run.DrainRequestStatuses.Count,
            run.DrainRequestStatuses.Count - run.DrainRequestsWhole,
            run.ReadyzWhileDelayed,
            run.Drain.TotalSeconds,
            run.ExitCode,
            [.. run.Streams.Where(s => !s.Whole).Select(s => s.Problem ?? "")]);
    }

    private const double RollingTokensPerSecond = 10;
}
