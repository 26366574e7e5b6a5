using System.Globalization;
using System.Net.Http.Headers;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Sessions.Redis;
using MockLlm;

using static Gateway.Tests.Infrastructure.ResumeRequests;

namespace Gateway.Tests.Resume;

/// <summary>
/// Two gateway replicas over one real redis-server: a stream whose client dropped on replica A is resumed by a
/// request that lands on replica B, from the copy of its events in Redis (Redis Streams and a sharded channel), with
/// the guarantees a resume on A has; the mock's ledger holds one request.
/// </summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class CrossReplicaResumeTests
{
    private static readonly MockLlmOptions Model = new() { TokensPerSecond = 40, TimeToFirstTokenMs = 20 };

    [Theory]
    [InlineData("POST", RedisKind.Single)]
    [InlineData("GET", RedisKind.Single)]
    [InlineData("POST", RedisKind.Cluster)]
    public async Task DropOnA_ResumeOnB_TheRestOnce_ThenTheLive_OneRequestGeneratedWhole(string method, RedisKind kind)
    {
        await using var replicas = await StartAsync(kind: kind);
        var first = await OpenAsync(replicas.A, "s1", tokens: 80);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 5);
        first.Dispose();

        using var second = await SseClient.OpenAsync(replicas.B.Client, ResumeRequest("s1", seen[^1].Id!, get: method == "GET"));
        Assert.Equal(200, (int)second.Response.StatusCode);
        var rest = await second.ReadToEndAsync();

        AssertContiguous([.. seen, .. rest]);
        Assert.True(rest[^1].IsDone, "the resume on B ends with the stream's end mark");
        var entry = await replicas.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.Single(replicas.Mock.Ledger.Snapshot(), e => e.SessionId == "s1");
        Assert.True(entry is { Completed: true, Cancelled: false });
        Assert.Equal(entry.TokensSent, seen.Concat(rest).Count(e => e.HasContent));
    }

    [Fact]
    public async Task ResumedOnATheOwner_ThenOnB_TheNewerOnBWins_TheReaderOnAIsToldSuperseded()
    {
        await using var replicas = await StartAsync();
        var first = await OpenAsync(replicas.A, "s1", tokens: 200);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        first.Dispose();

        using var onA = await SseClient.OpenAsync(replicas.A.Client, ResumeRequest("s1", seen[^1].Id!));
        var readOnA = await onA.ReadAsync(es => es.Count(e => e.HasContent) >= 2);
        using var onB = await SseClient.OpenAsync(replicas.B.Client, ResumeRequest("s1", readOnA[^1].Id!));
        var tailOnA = await onA.ReadToEndAsync();
        var onBAll = await onB.ReadToEndAsync();

        Assert.Contains(tailOnA, e => e.IsError("superseded"));
        Assert.DoesNotContain(tailOnA, e => e.IsDone);
        AssertContiguous([.. seen, .. readOnA, .. onBAll]);
        Assert.True(onBAll[^1].IsDone);
        var entry = await replicas.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry is { Completed: true, Cancelled: false });
    }

    /// <summary>The same as a deployment runs it: two gateway processes (<c>dotnet Gateway.dll</c>, each its own runtime,
    /// registry and Redis connection) over one redis-server.</summary>
    [Fact]
    public async Task TwoGatewayProcesses_DropOnOne_ResumeOnTheOther_TheRestOnce()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var mock = await MockLlmServer.StartAsync(Model);
        var (a, aAddress) = await StartProcessAsync(redis, mock);
        await using var aScope = a;
        var (b, bAddress) = await StartProcessAsync(redis, mock);
        await using var bScope = b;
        using var toB = StreamReading.NewClient(bAddress);

        var first = await SseClient.OpenAsync(StreamReading.NewClient(aAddress), ChatStream("s1", tokens: 80), owned: true);
        Assert.Equal(200, (int)first.Response.StatusCode);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 5);
        first.Dispose();

        using var second = await SseClient.OpenAsync(toB, ResumeRequest("s1", seen[^1].Id!));
        Assert.Equal(200, (int)second.Response.StatusCode);
        var rest = await second.ReadToEndAsync();

        AssertContiguous([.. seen, .. rest]);
        Assert.True(rest[^1].IsDone);
        var entry = await Wait.ForEntryAsync(mock.Ledger, "s1", e => e.EndedAt is not null);
        Assert.Single(mock.Ledger.Snapshot(), e => e.SessionId == "s1");
        Assert.True(entry is { Completed: true, Cancelled: false });
        Assert.Equal(entry.TokensSent, seen.Concat(rest).Count(e => e.HasContent));
    }

    /// <summary>SIGTERM to a gateway process holding a detached stream with a five-minute window: the stream is aborted at
    /// the drain deadline, not kept for its window, and the process exits.</summary>
    [Fact]
    public async Task Sigterm_WithADetachedStream_AbortedAtTheDrainDeadline_TheProcessExits()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var mock = await MockLlmServer.StartAsync(Model);
        var (gateway, address) = await StartProcessAsync(redis, mock, window: "00:05:00", drainTimeout: "00:00:02");
        await using var scope = gateway;

        var first = await SseClient.OpenAsync(StreamReading.NewClient(address), ChatStream("s1", tokens: 4000), owned: true);
        await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        first.Dispose();
        using var http = new HttpClient { BaseAddress = address };
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (!(await PromText.ParseAsync(http)).Any(s => s.Name == "llm_gateway_resume_detached" && s.Value == 1))
        {
            deadline.Token.ThrowIfCancellationRequested();
        }

        ProcessSignals.Terminate(gateway.Id);
        Assert.Equal(0, await gateway.WaitForExitAsync(Wait.Timeout));
        var entry = await Wait.ForEntryAsync(mock.Ledger, "s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        Assert.True(entry.TokensSent < entry.TokensPlanned);
    }

    private static async Task<(DotnetProcess Process, Uri BaseAddress)> StartProcessAsync(RedisServer redis, MockLlmServer mock,
        string window = "00:00:30", string? drainTimeout = null)
    {
        var (process, address) = await DotnetProcess.StartListeningAsync("Gateway.dll", TimeSpan.FromSeconds(60), start =>
        {
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            start.Environment["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString();
            start.Environment["ReverseProxy__Routes__llm__Metadata__SessionStreams.Resume"] = window;
            if (drainTimeout is not null)
            {
                start.Environment["Gateway__Shutdown__DrainTimeout"] = drainTimeout;
                start.Environment["Gateway__Shutdown__ReadinessDelay"] = "00:00:00";
            }

            start.Environment["Gateway__Sessions__Redis"] = redis.ConnectionString;
        });

        // The registry connects in the background: cross-replica once its gauge says Redis is there.
        using var http = new HttpClient { BaseAddress = address };
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (!(await PromText.ParseAsync(http)).Any(s => s.Name == "llm_gateway_redis_available" && s.Value == 1))
        {
            deadline.Token.ThrowIfCancellationRequested();
        }

        return (process, address);
    }

    [Fact]
    public async Task ReadOnBLongerThanTheWindow_TheOwnerDoesNotExpireIt()
    {
        await using var replicas = await StartAsync(window: "00:00:01");
        var first = await OpenAsync(replicas.A, "s1", tokens: 120); // three seconds of answer, three windows
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        first.Dispose();

        using var second = await SseClient.OpenAsync(replicas.B.Client, ResumeRequest("s1", seen[^1].Id!));
        var rest = await second.ReadToEndAsync();

        Assert.True(rest[^1].IsDone);
        AssertContiguous([.. seen, .. rest]);
        var entry = await replicas.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry is { Completed: true, Cancelled: false }, "expired under a reader on B");
    }

    [Fact]
    public async Task StopSentToBWhileBReads_TheReaderIsToldStopped_TheUpstreamStops()
    {
        await using var replicas = await StartAsync();
        var first = await OpenAsync(replicas.A, "s1", tokens: 400, authorization: "Bearer t1");
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        first.Dispose();
        using var second = await SseClient.OpenAsync(replicas.B.Client, ResumeRequest("s1", seen[^1].Id!, authorization: "Bearer t1"));
        await second.ReadAsync(es => es.Count(e => e.HasContent) >= 2);

        using var stop = new HttpRequestMessage(HttpMethod.Post, "/v1/sessions/s1/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse("Bearer t1");
        using var stopped = await replicas.B.Client.SendAsync(stop);
        Assert.True(stopped.IsSuccessStatusCode);

        var tail = await second.ReadToEndAsync();
        Assert.Contains(tail, e => e.IsError("stopped"));
        var entry = await replicas.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
    }

    [Fact]
    public async Task AnotherTenantOrAForgedIdOnB_ResumeUnavailable_TheStreamGoesOn()
    {
        await using var replicas = await StartAsync();
        var first = await OpenAsync(replicas.A, "s1", tokens: 60, authorization: "Bearer t1");
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        var id = seen[^1].Id!;

        foreach (var (candidate, credential, session) in new[]
        {
            (id, "Bearer t2", "s1"),
            (id, "Bearer t1", "s2"),
            (id[..(id.IndexOf('.') + 1)] + "999999", "Bearer t1", "s1"),
            ("AAAAAAAAAAAAAAAAAAAAAA.1", "Bearer t1", "s1"),
        })
        {
            using var post = await replicas.B.Client.SendAsync(ResumeRequest(session, candidate, authorization: credential));
            Assert.True(409 == (int)post.StatusCode, $"{candidate} {credential} {session}: {(int)post.StatusCode}");
            Assert.Contains("\"resume_unavailable\"", await post.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var rest = await first.ReadToEndAsync();
        first.Dispose();
        Assert.True(rest[^1].IsDone);
        Assert.Single(replicas.Mock.Ledger.Snapshot());
    }

    [Fact]
    public async Task RedisDown_ResumeOnTheOwnerStillWorks_ElsewhereUnavailable()
    {
        await using var replicas = await StartAsync();
        var first = await OpenAsync(replicas.A, "s1", tokens: 120);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        first.Dispose();
        await replicas.Redis.KillAsync();
        await replicas.B.WaitAvailableAsync(available: false);

        using (var elsewhere = await replicas.B.Client.SendAsync(ResumeRequest("s1", seen[^1].Id!)))
        {
            Assert.Equal(409, (int)elsewhere.StatusCode);
        }

        using var owner = await SseClient.OpenAsync(replicas.A.Client, ResumeRequest("s1", seen[^1].Id!));
        var rest = await owner.ReadToEndAsync();
        Assert.True(rest[^1].IsDone);
        AssertContiguous([.. seen, .. rest]);
    }

    private static Task<Replicas> StartAsync(string window = "00:00:30", RedisKind kind = RedisKind.Single) =>
        Replicas.StartAsync(mock: Model, configure: s => s["ReverseProxy:Routes:llm:Metadata:SessionStreams.Resume"] = window, kind: kind);

    private static async Task<SseClient> OpenAsync(Replica replica, string session, int tokens, string? authorization = null)
    {
        var client = StreamReading.NewClient(replica.Host.BaseAddress);
        var sse = await SseClient.OpenAsync(client, ChatStream(session, tokens, authorization: authorization), owned: true);
        Assert.Equal(200, (int)sse.Response.StatusCode);
        return sse;
    }

}
