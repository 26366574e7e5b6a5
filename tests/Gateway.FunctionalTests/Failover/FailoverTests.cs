using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using MockLlm;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.Failover;

/// <summary>
/// Failover before the first byte, over real sockets: a destination that is down (never listening, killed and
/// restarted, resetting what it was sent) never costs a client a 502 while another is up; the mocks' ledgers say
/// each request was generated once; a body over the bound, a reset with resending off, and all destinations down
/// each get the API's 502, counted.
/// </summary>
public sealed class FailoverTests
{
    private static readonly MockLlmOptions Quick = new() { TimeToFirstTokenMs = 0, TokensPerSecond = 2_000, DefaultCompletionTokens = 4 };

    [Fact]
    public async Task ThreeDestinations_OneNeverListening_OneKilledAndRestarted_TwoHundredMixedRequestsAllSucceed_EachGeneratedOnce()
    {
        var dead = ClosedPorts.Next();
        var mocks = new MockLlmServer?[] { null, await MockLlmServer.StartAsync(Quick), await MockLlmServer.StartAsync(Quick) };
        var killedPort = mocks[2]!.BaseAddress.Port;
        var route = "failover-mix";
        using var metrics = new MetricRecorder(route);
        await using var gateway = await GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            [$"ReverseProxy:Routes:{route}:ClusterId"] = "llm",
            [$"ReverseProxy:Routes:{route}:Match:Path"] = "/plain/{**rest}",
            [$"ReverseProxy:Routes:{route}:Metadata:SessionStreams"] = "true",
            [$"ReverseProxy:Routes:{route}:Transforms:0:PathRemovePrefix"] = "/plain",
            ["ReverseProxy:Routes:aff:ClusterId"] = "llm",
            ["ReverseProxy:Routes:aff:Match:Path"] = "/aff/{**rest}",
            ["ReverseProxy:Routes:aff:Metadata:SessionStreams"] = "true",
            ["ReverseProxy:Routes:aff:Metadata:SessionStreams.Affinity"] = "true",
            ["ReverseProxy:Routes:aff:Transforms:0:PathRemovePrefix"] = "/aff",
            ["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "RoundRobin",
            ["ReverseProxy:Clusters:llm:HealthCheck:Passive:ReactivationPeriod"] = "00:00:01",
            ["ReverseProxy:Clusters:llm:Destinations:d0:Address"] = $"http://127.0.0.1:{dead}/",
            ["ReverseProxy:Clusters:llm:Destinations:d1:Address"] = mocks[1]!.BaseAddress.ToString(),
            ["ReverseProxy:Clusters:llm:Destinations:d2:Address"] = mocks[2]!.BaseAddress.ToString(),
        });
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        string[] apis = ["/v1/chat/completions", "/v1/messages", "/api/chat"];
        var answered = new List<(string Session, StreamTranscript Transcript)>();
        MockLlmServer? killed = null;
        var superseded = new List<string>();

        async Task SendAsync(int i)
        {
            var prefix = i % 2 == 0 ? "/aff" : "/plain";
            var api = apis[i % apis.Length];
            var session = $"mix-{i}";
            if (i % 10 == 7)
            {
                // A supersede: a long answer, then a newer request with its key.
                using var older = await StreamReading.SendAsync(client, Request(prefix + api, session, stream: true, maxTokens: 2_000, slow: true));
                var olderBody = await older.Content.ReadAsStreamAsync();
                Assert.True(await olderBody.ReadAsync(new byte[1]) > 0, $"{session}: the older stream sent nothing");
                var newer = await StreamReading.SendAndReadAsync(client, Request(prefix + api, session, stream: true, maxTokens: 3));
                var cut = await StreamReading.ReadToEndAsync(older);
                Assert.True(cut.EndedCleanly, $"{session}: the older stream ended with {cut.ReadError}");
                Assert.Contains(cut.Lines, l => l.Contains("superseded", StringComparison.Ordinal));
                lock (answered)
                {
                    answered.Add((session, newer));
                    superseded.Add(session);
                }

                return;
            }

            var transcript = await StreamReading.SendAndReadAsync(client, Request(prefix + api, session, stream: i % 3 != 0, maxTokens: 3));
            lock (answered)
            {
                answered.Add((session, transcript));
            }
        }

        for (var i = 0; i < 200; i += 4)
        {
            if (i == 80)
            {
                // Killed between requests: what it had answered stays in its ledger.
                await mocks[2]!.DisposeAsync();
                killed = mocks[2];
                mocks[2] = null;
            }

            if (i == 140)
            {
                mocks[2] = await MockLlmServer.StartAsync(Quick, killedPort);
            }

            await Task.WhenAll(Enumerable.Range(i, 4).Select(SendAsync));
        }

        // Taken back after its reactivation period: later requests reach it again.
        using (var deadline = new CancellationTokenSource(Wait.Timeout))
        {
            for (var i = 1000; mocks[2]!.Ledger.Snapshot().Count == 0; i++)
            {
                deadline.Token.ThrowIfCancellationRequested();
                var transcript = await StreamReading.SendAndReadAsync(client, Request("/plain/v1/chat/completions", $"mix-{i}", stream: false, maxTokens: 3));
                answered.Add(($"mix-{i}", transcript));
            }
        }

        Assert.All(answered, a => Assert.True(a.Transcript.StatusCode == 200 && a.Transcript.EndedCleanly,
            $"{a.Session}: {a.Transcript.StatusCode} {a.Transcript.ReadError} {string.Join('\n', a.Transcript.Lines.Take(3))}"));
        Assert.All(answered, a => Assert.DoesNotContain(a.Transcript.Lines, l => l.Contains("upstream_", StringComparison.Ordinal)));

        // Each request generated once, wherever it went: one ledger entry a session (two for a supersede: the older, cut, and the newer).
        var entries = new[] { mocks[1]!, mocks[2]! }.SelectMany(m => m.Ledger.Snapshot()).Concat(killed!.Ledger.Snapshot()).ToList();
        foreach (var (session, _) in answered)
        {
            var mine = entries.Where(e => e.SessionId == session).ToList();
            if (superseded.Contains(session))
            {
                Assert.Equal(2, mine.Count);
                Assert.Single(mine, e => e.Completed);
            }
            else
            {
                Assert.True(mine.Count == 1 && mine[0].Completed, $"{session}: {mine.Count} ledger entries");
            }
        }

        // It was failover that answered them: d0 refused at the start, d2 once it was killed.
        Assert.True(metrics.All("llm_gateway.upstream.retries").Count(m => m["reason"] == "connect") >= 2,
            string.Join("; ", metrics.All("llm_gateway.upstream.retries").Select(m => m["reason"])));
        Assert.Contains(metrics.All("llm_gateway.streams.ended"), m => m["outcome"] == "completed");
        Assert.DoesNotContain(metrics.All("llm_gateway.streams.ended"), m => m["outcome"] == "upstream_error");
    }

    [Theory]
    [InlineData(true, 200)]
    [InlineData(false, 502)]
    public async Task ResetAfterTheRequestWasSent_ResentOnlyWhenTheClusterSaysSo(bool resend, int expected)
    {
        await using var resetting = new ResettingUpstream();
        await using var mock = await MockLlmServer.StartAsync(Quick);
        var route = "failover-reset-" + resend;
        await using var gateway = await GatewayHost.StartAsync(TwoDestinations(route, resetting.BaseAddress, mock.BaseAddress, s =>
            s["ReverseProxy:Clusters:llm:Metadata:Failover.ResendAfterReset"] = resend ? "true" : "false"));
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var transcript = await StreamReading.SendAndReadAsync(client, Request("/v1/chat/completions", "reset-1", stream: true, maxTokens: 3));

        Assert.Equal(expected, transcript.StatusCode);
        Assert.Equal(1, resetting.Requests);
        Assert.True(resetting.BodiesComplete, "the resetting destination was not sent the whole body before it reset");
        Assert.Equal(resend ? 1 : 0, mock.Ledger.Snapshot().Count);
        if (!resend)
        {
            var error = JsonDocument.Parse(string.Join('\n', transcript.Lines)).RootElement.GetProperty("error");
            Assert.Equal("upstream_unavailable", error.GetProperty("code").GetString());
        }
    }

    [Theory]
    [InlineData(64, 502)]          // the body (about 200 bytes) is over the bound and was sent: not resent
    [InlineData(1024 * 1024, 200)] // within it: resent whole
    public async Task BodyOverTheBound_NotResentAfterAReset_WithinIt_ResentWhole(int maxBodyBytes, int expected)
    {
        await using var resetting = new ResettingUpstream();
        await using var mock = await MockLlmServer.StartAsync(Quick);
        var route = "failover-bound-" + maxBodyBytes;
        await using var gateway = await GatewayHost.StartAsync(TwoDestinations(route, resetting.BaseAddress, mock.BaseAddress, s =>
            s["Gateway:Failover:MaxBodyBytes"] = maxBodyBytes.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var transcript = await StreamReading.SendAndReadAsync(client, Request("/v1/chat/completions", "bound-1", stream: false, maxTokens: 3));

        Assert.Equal(expected, transcript.StatusCode);
        Assert.Equal(expected == 200 ? 1 : 0, mock.Ledger.Snapshot().Count);
        if (expected == 200)
        {
            // The mock parsed the resent body: the same bytes, whole.
            Assert.Equal("mock-1", JsonDocument.Parse(string.Join('\n', transcript.Lines)).RootElement.GetProperty("model").GetString());
        }
    }

    [Fact]
    public async Task RefusedConnection_ResentEvenWithNoBodyKept_NothingOfItWasSent()
    {
        await using var mock = await MockLlmServer.StartAsync(Quick);
        var route = "failover-refused";
        using var metrics = new MetricRecorder(route);
        await using var gateway = await GatewayHost.StartAsync(TwoDestinations(route, ClosedPorts.Address(), mock.BaseAddress,
            s => s["Gateway:Failover:MaxBodyBytes"] = "0"));
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        // Ten requests: the first finds d0 refusing and is sent to d1; passive health then leaves d0 out.
        for (var i = 0; i < 10; i++)
        {
            var transcript = await StreamReading.SendAndReadAsync(client, Request("/v1/chat/completions", $"refused-{i}", stream: true, maxTokens: 3));
            Assert.Equal(200, transcript.StatusCode);
            Assert.Equal("[DONE]", transcript.DataEvents[^1]);
        }

        Assert.Equal(10, mock.Ledger.Snapshot().Count);
        var retries = metrics.All("llm_gateway.upstream.retries").Where(m => m["cluster"] == "llm").ToList();
        Assert.Single(retries);
        Assert.Equal("connect", retries[0]["reason"]);
    }

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/messages")]
    [InlineData("/api/chat")]
    public async Task AllDestinationsDown_502UpstreamUnavailableInTheApisShape_AfterTheBoundedAttempts(string path)
    {
        var route = "failover-down-" + path.Replace('/', '-');
        using var metrics = new MetricRecorder(route);
        var settings = TwoDestinations(route, ClosedPorts.Address(), ClosedPorts.Address(), _ => { });
        settings[$"ReverseProxy:Clusters:llm:Destinations:d2:Address"] = ClosedPorts.Address().ToString();
        settings[$"ReverseProxy:Clusters:llm:Destinations:d3:Address"] = ClosedPorts.Address().ToString();
        await using var gateway = await GatewayHost.StartAsync(settings);
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        var transcript = await StreamReading.SendAndReadAsync(client, Request(path, "down-1", stream: true, maxTokens: 3));

        Assert.Equal(502, transcript.StatusCode);
        var body = JsonDocument.Parse(string.Join('\n', transcript.Lines)).RootElement;
        var text = body.GetRawText();
        Assert.Contains(path == "/api/chat" ? "could not be reached" : "upstream_", text, StringComparison.Ordinal);
        // Three attempts on a cluster of four (the default bound): two retried, then the answer.
        var retries = metrics.All("llm_gateway.upstream.retries").Where(m => m["cluster"] == "llm").ToList();
        Assert.Equal(2, retries.Count);
        Assert.All(retries, r => Assert.Equal("connect", r["reason"]));
        var ended = await metrics.WaitForAsync("llm_gateway.streams.ended");
        Assert.Equal("upstream_error", ended["outcome"]);
    }

    [Fact]
    public async Task ActiveHealthChecks_DestinationThatStopsIsTakenOutByProbing_AndBackWhenItAnswersAgain()
    {
        // YARP's own active checks, as docs/behaviour.md shows them for a model server's health endpoint.
        var a = await MockLlmServer.StartAsync(Quick);
        var b = await MockLlmServer.StartAsync(Quick);
        var bPort = b.BaseAddress.Port;
        var route = "failover-active";
        using var metrics = new MetricRecorder(route);
        await using var gateway = await GatewayHost.StartAsync(TwoDestinations(route, a.BaseAddress, b.BaseAddress, s =>
        {
            s["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "RoundRobin";
            s["ReverseProxy:Clusters:llm:HealthCheck:Passive:Enabled"] = "false"; // what probing alone does
            s["ReverseProxy:Clusters:llm:HealthCheck:Active:Enabled"] = "true";
            s["ReverseProxy:Clusters:llm:HealthCheck:Active:Interval"] = "00:00:00.200";
            s["ReverseProxy:Clusters:llm:HealthCheck:Active:Timeout"] = "00:00:02";
            s["ReverseProxy:Clusters:llm:HealthCheck:Active:Policy"] = "ConsecutiveFailures";
            s["ReverseProxy:Clusters:llm:HealthCheck:Active:Path"] = "/healthz";
            s["ReverseProxy:Clusters:llm:Metadata:ConsecutiveFailuresHealthPolicy.Threshold"] = "1";
        }));
        var state = gateway.Services.GetRequiredService<Yarp.ReverseProxy.IProxyStateLookup>();
        Assert.True(state.TryGetCluster("llm", out var cluster));
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        try
        {
            // A probe round ends before the next begins: once a destination has had two, the first one's verdict stands.
            await Task.WhenAll(a.HealthProbes.WaitForAsync(2, Wait.Timeout), b.HealthProbes.WaitForAsync(2, Wait.Timeout));
            Assert.Equal(DestinationHealth.Healthy, cluster.Destinations["d1"].Health.Active);

            await b.DisposeAsync();
            await a.HealthProbes.WaitForAsync(a.HealthProbes.Count + 2, Wait.Timeout);
            Assert.Equal(DestinationHealth.Unhealthy, cluster.Destinations["d1"].Health.Active);
            for (var i = 0; i < 6; i++)
            {
                var transcript = await StreamReading.SendAndReadAsync(client, Request("/v1/chat/completions", $"active-{i}", stream: true, maxTokens: 3));
                Assert.Equal(200, transcript.StatusCode);
            }

            Assert.Equal(6, a.Ledger.Snapshot().Count); // none was tried on the stopped one first
            Assert.Empty(metrics.All("llm_gateway.upstream.retries"));

            b = await MockLlmServer.StartAsync(Quick, bPort);
            await b.HealthProbes.WaitForAsync(1, Wait.Timeout);
            await a.HealthProbes.WaitForAsync(a.HealthProbes.Count + 2, Wait.Timeout);
            Assert.Equal(DestinationHealth.Healthy, cluster.Destinations["d1"].Health.Active);
        }
        finally
        {
            await a.DisposeAsync();
            await b.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("Failover.MaxAttempts", "0")]
    [InlineData("Failover.MaxAttempts", "11")]
    [InlineData("Failover.MaxAttempts", "three")]
    [InlineData("Failover.ResendAfterReset", "sometimes")]
    public async Task MalformedClusterSetting_RefusedAtStartNamingTheKey(string key, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings[$"ReverseProxy:Clusters:llm:Metadata:{key}"] = value;

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Contains($"ReverseProxy:Clusters:llm:Metadata:{key}", ExceptionText.Flatten(refused));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("100000000")]
    public async Task MalformedBodyBound_RefusedAtStartNamingTheKey(string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Failover:MaxBodyBytes"] = value;

        var refused = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));

        Assert.Contains("Gateway:Failover:MaxBodyBytes", ExceptionText.Flatten(refused));
    }

    /// <summary>Route <paramref name="route"/> to cluster "llm" of d0 (tried first: FirstAlphabetical) and d1.</summary>
    private static Dictionary<string, string?> TwoDestinations(string route, Uri first, Uri second, Action<Dictionary<string, string?>> configure)
    {
        var settings = GatewayHost.DefaultSettings(first, route);
        settings.Remove("ReverseProxy:Clusters:llm:Destinations:primary:Address");
        settings["ReverseProxy:Clusters:llm:LoadBalancingPolicy"] = "FirstAlphabetical";
        settings["ReverseProxy:Clusters:llm:Destinations:d0:Address"] = first.ToString();
        settings["ReverseProxy:Clusters:llm:Destinations:d1:Address"] = second.ToString();
        configure(settings);
        return settings;
    }

    private static HttpRequestMessage Request(string path, string session, bool stream, int maxTokens, bool slow = false)
    {
        var request = StreamReading.ChatRequest(path, "hello there", session, stream, maxTokens);
        if (slow)
        {
            // A long answer (100 s of tokens): it is still streaming whenever the newer request comes.
            request.Headers.TryAddWithoutValidation("X-Mock-Tokens-Per-Second", "20");
            request.Headers.TryAddWithoutValidation("X-Mock-Completion-Tokens", "2000");
        }

        return request;
    }
}
