using System.Globalization;
using System.Text;
using Gateway.Resume;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MockLlm;

using static Gateway.Tests.Infrastructure.ResumeRequests;

namespace Gateway.Tests.Resume;

/// <summary>
/// Resumable streams over real Kestrel and the mock: a client that goes away without a stop detaches its stream,
/// which keeps generating for the route's window; a request with its <c>Last-Event-ID</c> gets the rest, each event
/// once. The mock's ledger says what was generated: one request, whole, never cancelled.
/// </summary>
public sealed class ResumeTests
{
    private static readonly MockLlmOptions Model = new() { TokensPerSecond = 40, TimeToFirstTokenMs = 20 };

    [Theory]
    [InlineData("POST")]
    [InlineData("GET")]
    public async Task ClientDrops_ResumeWithLastEventId_GetsTheRestOnce_OneRequestGeneratedWhole(string method)
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        using var metrics = new MetricRecorder(route);
        var first = await OpenAsync(stack, "s1", tokens: 60);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 5);
        Drop(first);
        await metrics.WaitForAsync("llm_gateway.resume.detached", m => m.Value == 1);

        using var second = await SseClient.OpenAsync(stack.Client, ResumeRequest("s1", seen[^1].Id!, get: method == "GET"));
        Assert.Equal(200, (int)second.Response.StatusCode);
        Assert.Equal("text/event-stream", second.Response.Content.Headers.ContentType?.MediaType);
        var rest = await second.ReadToEndAsync();

        AssertContiguous(seen.Concat(rest).ToList());
        Assert.True(rest[^1].IsDone, "the resume ends with the stream's end mark");
        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.Single(stack.Ledger.Snapshot(), e => e.SessionId == "s1");
        Assert.True(entry is { Completed: true, Cancelled: false }, $"completed {entry.Completed}, cancelled {entry.Cancelled}");
        Assert.Equal(entry.TokensSent, seen.Concat(rest).Count(e => e.HasContent));
        await metrics.WaitForAsync("llm_gateway.resume.outcomes", m => m["outcome"] == ResumeOutcomes.Resumed);
    }

    [Fact]
    public async Task ResumeWhileTheFirstClientStillReads_TakesOver_FirstIsToldSuperseded_NoEventTwiceOnTheNewOne()
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        var first = await OpenAsync(stack, "s1", tokens: 60);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);

        using var second = await SseClient.OpenAsync(stack.Client, ResumeRequest("s1", seen[^1].Id!));
        var rest = await second.ReadToEndAsync();
        var firstTail = await first.ReadToEndAsync();
        first.Dispose();

        Assert.Contains(firstTail, e => e.IsError("superseded"));
        AssertContiguous(seen.Concat(rest).ToList());
        Assert.True(rest[^1].IsDone);
        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry is { Completed: true, Cancelled: false });
    }

    [Fact]
    public async Task UpstreamFinishesWhileDetached_ResumeGetsTheRestAndTheEnd_ThenAReconnectGets204()
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        var first = await OpenAsync(stack, "s1", tokens: 30, tokensPerSecond: 100);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);
        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry is { Completed: true, Cancelled: false });

        using var second = await SseClient.OpenAsync(stack.Client, ResumeRequest("s1", seen[^1].Id!));
        var rest = await second.ReadToEndAsync();
        AssertContiguous(seen.Concat(rest).ToList());
        Assert.True(rest[^1].IsDone);
        Assert.Equal(entry.TokensSent, seen.Concat(rest).Count(e => e.HasContent));

        using var again = await stack.Client.SendAsync(ResumeRequest("s1", rest[^1].Id!, get: true));
        Assert.Equal(204, (int)again.StatusCode);
        using var againPost = await stack.Client.SendAsync(ResumeRequest("s1", rest[^1].Id!));
        Assert.Equal(204, (int)againPost.StatusCode);
    }

    [Fact]
    public async Task FinishedStream_KeptForTheWindowOnly_ThenForgotten()
    {
        var route = Route();
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow);
        using var metrics = new MetricRecorder(route);
        await using var stack = await Stack.StartAsync(Model, settings => settings[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.Resume"] = "00:00:30",
            routeId: route, builder: web => web.Services.AddSingleton<TimeProvider>(clock));
        var first = await OpenAsync(stack, "s1", tokens: 5, tokensPerSecond: 1000);
        var all = await first.ReadToEndAsync();
        first.Dispose();
        Assert.True(all[^1].IsDone);
        await metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == "completed");

        // Within the window a reconnect from an earlier event gets the rest of the finished answer.
        using (var early = await SseClient.OpenAsync(stack.Client, ResumeRequest("s1", all[1].Id!)))
        {
            var rest = await early.ReadToEndAsync();
            AssertContiguous([.. all.Take(2), .. rest]);
            Assert.True(rest[^1].IsDone);
        }

        Assert.Equal(1, Store(stack).Count);
        clock.Advance(TimeSpan.FromSeconds(31));
        Assert.Equal(0, Store(stack).Count);
        using var late = await stack.Client.SendAsync(ResumeRequest("s1", all[1].Id!));
        Assert.Equal(409, (int)late.StatusCode);
    }

    [Fact]
    public async Task TwoResumesOfOneStream_TheNewerWins_TheOlderIsToldSuperseded()
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        var first = await OpenAsync(stack, "s1", tokens: 80);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);

        using var older = await SseClient.OpenAsync(stack.Client, ResumeRequest("s1", seen[^1].Id!));
        var olderSeen = await older.ReadAsync(es => es.Count(e => e.HasContent) >= 1);
        using var newer = await SseClient.OpenAsync(stack.Client, ResumeRequest("s1", seen[^1].Id!));
        var olderTail = await older.ReadToEndAsync();
        var newerAll = await newer.ReadToEndAsync();

        Assert.Contains(olderTail, e => e.IsError("superseded"));
        Assert.DoesNotContain(olderSeen.Concat(olderTail), e => e.IsDone);
        AssertContiguous(seen.Concat(newerAll).ToList());
        Assert.True(newerAll[^1].IsDone);
        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry is { Completed: true, Cancelled: false });
    }

    [Fact]
    public async Task NobodyComesBack_UpstreamAbortedAtTheEndOfTheWindow_UndeliveredTokensCounted_ResumeThenUnavailable()
    {
        var route = Route();
        await using var stack = await StartAsync(route, window: "00:00:00.500");
        using var metrics = new MetricRecorder(route);
        var first = await OpenAsync(stack, "s1", tokens: 400);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);

        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled, "aborted when the window ended");
        Assert.True(entry.TokensSent < entry.TokensPlanned);
        await metrics.WaitForAsync("llm_gateway.resume.outcomes", m => m["outcome"] == ResumeOutcomes.Expired);
        var undelivered = await metrics.WaitForAsync("llm_gateway.resume.tokens_undelivered");
        Assert.InRange(undelivered.Value, 1, entry.TokensSent - seen.Count(e => e.HasContent));
        var ended = await metrics.WaitForAsync("llm_gateway.streams.ended");
        Assert.Equal("client_disconnected", ended["outcome"]);
        // What the model generated while nobody listened is counted as streamed (spent), not as saved: all of it but
        // what was in flight as the gateway aborted (the token it was reading, and one the mock sent as the abort
        // reached it, when a stall of the test process held both up; the mock no longer bursts after one).
        var streamed = await metrics.WaitForAsync("llm_gateway.tokens.streamed");
        Assert.InRange(streamed.Value, entry.TokensSent - 2, entry.TokensSent);

        using var late = await stack.Client.SendAsync(ResumeRequest("s1", seen[^1].Id!));
        Assert.Equal(409, (int)late.StatusCode);
        Assert.Contains("\"resume_unavailable\"", await late.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(0, Store(stack).Count);
    }

    [Theory]
    [InlineData("stop")]
    [InlineData("supersede")]
    public async Task StopOrSupersedeWhileDetached_AbortsAtOnce_AndTheIdCannotBeResumed(string how)
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        using var metrics = new MetricRecorder(route);
        var first = await OpenAsync(stack, "s1", tokens: 400);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);
        await metrics.WaitForAsync("llm_gateway.resume.detached", m => m.Value == 1);

        if (how == "stop")
        {
            using var stop = await stack.Client.PostAsync("/v1/sessions/s1/cancel", null);
            Assert.True(stop.IsSuccessStatusCode);
        }
        else
        {
            var newer = await StreamReading.SendAndReadAsync(stack.Client, ChatStream("s1", tokens: 3));
            Assert.Contains(newer.Lines, l => l == "data: [DONE]");
        }

        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        using var resume = await stack.Client.SendAsync(ResumeRequest("s1", seen[^1].Id!));
        Assert.Equal(409, (int)resume.StatusCode);
        using var resumeGet = await stack.Client.SendAsync(ResumeRequest("s1", seen[^1].Id!, get: true));
        Assert.Equal(204, (int)resumeGet.StatusCode);
    }

    [Theory]
    [InlineData("stop", "stopped")]
    [InlineData("supersede", "superseded")]
    public async Task StopOrSupersedeWhileTheClientReads_TheClientIsToldWhy_AsOnAnyRoute(string how, string code)
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        var first = await OpenAsync(stack, "s1", tokens: 400);
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);

        if (how == "stop")
        {
            using var stop = await stack.Client.PostAsync("/v1/sessions/s1/cancel", null);
            Assert.True(stop.IsSuccessStatusCode);
        }
        else
        {
            var newer = await StreamReading.SendAndReadAsync(stack.Client, ChatStream("s1", tokens: 3));
            Assert.Contains(newer.Lines, l => l == "data: [DONE]");
        }

        var tail = await first.ReadToEndAsync();
        first.Dispose();
        Assert.True(tail[^1].IsError(code), $"the last event was not the {code} notice");
        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        using var resume = await stack.Client.SendAsync(ResumeRequest("s1", seen[^1].Id!));
        Assert.Equal(409, (int)resume.StatusCode);
    }

    [Fact]
    public async Task BadOrForeignIds_OneAnswer_NeverANewGeneration_TheStreamGoesOn()
    {
        var route = Route();
        await using var stack = await StartAsync(route);
        var first = await OpenAsync(stack, "s1", tokens: 60, authorization: "Bearer tenant-a");
        var seen = await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        var id = seen[^1].Id!;
        var streamPart = id[..id.IndexOf('.')];

        // Well-formed ids that name nothing of this caller's: unknown, another stream's form, past the end, and the
        // right id sent with another tenant's credential or another session id.
        string[] unknown = ["abc", "AAAAAAAAAAAAAAAAAAAAAA.1", streamPart + ".999999", streamPart + ".0", streamPart + ".-1", streamPart + ". 1", id + "x"];
        foreach (var candidate in unknown)
        {
            using var post = await stack.Client.SendAsync(ResumeRequest("s1", candidate, authorization: "Bearer tenant-a"));
            Assert.True(409 == (int)post.StatusCode, $"{candidate}: {(int)post.StatusCode}");
            using var get = await stack.Client.SendAsync(ResumeRequest("s1", candidate, get: true, authorization: "Bearer tenant-a"));
            Assert.Equal(204, (int)get.StatusCode);
        }

        using (var foreign = await stack.Client.SendAsync(ResumeRequest("s1", id, authorization: "Bearer tenant-b")))
        {
            Assert.Equal(409, (int)foreign.StatusCode);
            Assert.Contains("\"resume_unavailable\"", await foreign.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var otherSession = await stack.Client.SendAsync(ResumeRequest("s2", id, authorization: "Bearer tenant-a")))
        {
            Assert.Equal(409, (int)otherSession.StatusCode);
        }

        using (var tooLong = await stack.Client.SendAsync(ResumeRequest("s1", new string('a', 65), authorization: "Bearer tenant-a")))
        {
            Assert.Equal(400, (int)tooLong.StatusCode);
            Assert.Contains("\"invalid_last_event_id\"", await tooLong.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Bytes no client library sends: a control character and a non-ASCII byte, and the header twice.
        foreach (var header in new[] { "Last-Event-ID: a\x01b\r\n", "Last-Event-ID: caf\xe9\r\n", $"Last-Event-ID: {id}\r\nLast-Event-ID: {id}\r\n" })
        {
            var raw = RawHttp.ChatPost(Encoding.Latin1.GetBytes(header + "X-Session-Id: s1\r\nAuthorization: Bearer tenant-a\r\n"));
            var (status, _, body) = await RawHttp.SendAsync(stack.Gateway.BaseAddress, raw);
            Assert.True(status == 400, $"{header.Trim()}: {status} {body}");
        }

        // None of that reached the model server, and the stream itself went on to its end.
        var rest = await first.ReadToEndAsync();
        first.Dispose();
        Assert.True(rest[^1].IsDone);
        Assert.Single(stack.Ledger.Snapshot());
    }

    [Fact]
    public async Task DetachedStreamPastItsOwnBound_AbortedAtOnce_CountedAsOverflow()
    {
        var route = Route();
        await using var stack = await StartAsync(route, configure: s => s["Gateway:Resume:MaxStreamBytes"] = "4096");
        using var metrics = new MetricRecorder(route);
        var first = await OpenAsync(stack, "s1", tokens: 2000, tokensPerSecond: 400);
        await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);

        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        await metrics.WaitForAsync("llm_gateway.resume.outcomes", m => m["outcome"] == ResumeOutcomes.Overflow);
    }

    [Fact]
    public async Task DetachedStreamsPastTheGatewaysBound_AbortedAtOnce_CountedAsOverflow()
    {
        var route = Route();
        await using var stack = await StartAsync(route, configure: s => s["Gateway:Resume:MaxDetachedBytes"] = "65536");
        using var metrics = new MetricRecorder(route);
        var first = await OpenAsync(stack, "s1", tokens: 4000, tokensPerSecond: 1000);
        await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);

        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        Assert.True(entry.TokensSent < entry.TokensPlanned);
        await metrics.WaitForAsync("llm_gateway.resume.outcomes", m => m["outcome"] == ResumeOutcomes.Overflow);
        Assert.Equal(0, Store(stack).DetachedBytes);
    }

    [Fact]
    public async Task FinishedStreamThatDoesNotFitTheGatewaysBound_ForgottenAtOnce()
    {
        var route = Route();
        using var metrics = new MetricRecorder(route);
        await using var stack = await StartAsync(route, configure: s => s["Gateway:Resume:MaxDetachedBytes"] = "65536");
        var first = await OpenAsync(stack, "s1", tokens: 1000, tokensPerSecond: 2000);
        var all = await first.ReadToEndAsync();
        first.Dispose();
        Assert.True(all[^1].IsDone);
        Assert.True(all.Count > 400, "the answer's events are more than 64 KiB");
        await metrics.WaitForAsync("llm_gateway.streams.ended", m => m["outcome"] == "completed");

        Assert.Equal(0, Store(stack).Count);
        Assert.Equal(0, Store(stack).DetachedBytes);
        using var resume = await stack.Client.SendAsync(ResumeRequest("s1", all[1].Id!));
        Assert.Equal(409, (int)resume.StatusCode);
    }

    [Fact]
    public async Task HostStopsWithADetachedStream_AbortedAtTheDrainDeadline_TheHostStops()
    {
        var route = Route();
        var stack = await StartAsync(route, window: "00:05:00", configure: s => s["Gateway:Shutdown:DrainTimeout"] = "00:00:01");
        await using var mock = stack.Mock;
        using var metrics = new MetricRecorder(route);
        var first = await OpenAsync(stack, "s1", tokens: 4000);
        await first.ReadAsync(es => es.Count(e => e.HasContent) >= 3);
        Drop(first);
        await metrics.WaitForAsync("llm_gateway.resume.detached", m => m.Value == 1);

        // What SIGTERM does: the host stops; the detached stream does not hold it for its five-minute window.
        var store = Store(stack);
        stack.Client.Dispose();
        await stack.Gateway.DisposeAsync();
        var entry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled);
        Assert.Equal(0, store.Count);
    }

    [Fact]
    public async Task TenantPastItsDetachedBound_TheNextDetachIsAbortedAtOnce_AnotherTenantStillDetaches()
    {
        var route = Route();
        await using var stack = await StartAsync(route, configure: s => s["Gateway:Resume:MaxDetachedPerTenant"] = "1");
        using var metrics = new MetricRecorder(route);
        var a1 = await OpenAsync(stack, "a1", tokens: 400, authorization: "Bearer tenant-a");
        var a2 = await OpenAsync(stack, "a2", tokens: 400, authorization: "Bearer tenant-a");
        var b1 = await OpenAsync(stack, "b1", tokens: 400, authorization: "Bearer tenant-b");
        foreach (var c in new[] { a1, a2, b1 })
        {
            await c.ReadAsync(es => es.Count(e => e.HasContent) >= 2);
        }

        Drop(a1);
        await metrics.WaitForAsync("llm_gateway.resume.detached", m => m.Value == 1);
        Drop(a2);
        var aborted = await stack.WaitForEntryAsync("a2", e => e.EndedAt is not null);
        Assert.True(aborted.Cancelled);
        await metrics.WaitForAsync("llm_gateway.resume.outcomes", m => m["outcome"] == ResumeOutcomes.Overflow);
        Drop(b1);
        await metrics.WaitForAsync("llm_gateway.resume.detached", m => m.Value == 1 && metrics.All("llm_gateway.resume.detached").Count(x => x.Value == 1) >= 2);
        Assert.Null(stack.Ledger.Snapshot().Single(e => e.SessionId == "a1").EndedAt);
        Assert.Null(stack.Ledger.Snapshot().Single(e => e.SessionId == "b1").EndedAt);
    }

    [Fact]
    public async Task NdjsonOnAResumableRoute_HasNoIds_ClientDropAbortsAtOnce()
    {
        var route = Route();
        await using var stack = await StartAsync(route, window: "00:05:00");
        var response = await StreamReading.SendAsync(stack.Client, StreamReading.ChatRequest("/api/chat", "hi", "n1", maxTokens: 400));
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var line = await reader.ReadLineAsync();
        Assert.StartsWith("{", line);
        response.Dispose();

        var entry = await stack.WaitForEntryAsync("n1", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled, "NDJSON cannot be resumed: aborted at once, not after the five-minute window");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("00:00:00")]
    [InlineData("00:10:01")]
    [InlineData("soon")]
    [InlineData("-00:00:05")]
    public async Task BadResumeWindow_StartFails_NamingTheKey(string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:1/"));
        settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.Resume"] = value;
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));
        Assert.Contains("SessionStreams.Resume", ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ResumeWithDrain_StartFails_ButEachAloneStarts()
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:1/"));
        settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.Resume"] = "00:00:30";
        await GatewayHost.StartAndStopAsync(settings);
        settings["ReverseProxy:Routes:llm:Metadata:SessionStreams.CancelPolicy"] = "Drain";
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));
        Assert.Contains("SessionStreams.Resume", ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("Gateway:Resume:MaxStreamBytes", "100")]
    [InlineData("Gateway:Resume:MaxDetachedPerTenant", "0")]
    [InlineData("Gateway:Resume:MaxDetachedBytes", "lots")]
    public async Task BadResumeSetting_StartFails_NamingTheKey(string key, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:1/"));
        settings[key] = value;
        var error = await Assert.ThrowsAnyAsync<Exception>(() => GatewayHost.StartAndStopAsync(settings));
        Assert.Contains(key.Split(':')[^1], ExceptionText.Flatten(error), StringComparison.Ordinal);
    }

    private static string Route() => "resume" + Guid.NewGuid().ToString("N")[..8];

    /// <remarks>A stream still detached when the test ends holds the host's stop until it ends by itself or the drain
    /// deadline aborts it; the shipped deadline is five minutes, and the test's stop gives up after ten seconds. So the
    /// deadline here is two seconds, unless the test sets its own.</remarks>
    private static Task<Stack> StartAsync(string route, string window = "00:00:30", Action<Dictionary<string, string?>>? configure = null) =>
        Stack.StartAsync(Model, settings =>
        {
            settings[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.Resume"] = window;
            settings["Gateway:Shutdown:DrainTimeout"] = "00:00:02";
            configure?.Invoke(settings);
        }, routeId: route);

    private static ResumeStore Store(Stack stack) => stack.Gateway.Services.GetRequiredService<ResumeStore>();

    /// <summary>A client of its own (so that dropping it closes its connection) reading one stream.</summary>
    private static async Task<SseClient> OpenAsync(Stack stack, string session, int tokens, int tokensPerSecond = 40, string? authorization = null)
    {
        var client = StreamReading.NewClient(stack.Gateway.BaseAddress);
        var sse = await SseClient.OpenAsync(client, ChatStream(session, tokens, tokensPerSecond, authorization), owned: true);
        Assert.Equal(200, (int)sse.Response.StatusCode);
        return sse;
    }

    /// <summary>The client goes away without a stop: its connection is torn down mid-answer.</summary>
    private static void Drop(SseClient client) => client.Dispose();

}
