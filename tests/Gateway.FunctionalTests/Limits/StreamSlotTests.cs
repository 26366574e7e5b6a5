using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Tests.Limits;

/// <summary>
/// The concurrent-stream limit under supersedes, stops, drops and new keys, counted where it matters:
/// at the upstream, from the mock's ledger (an entry is a live upstream stream from its start to its end).
/// </summary>
public sealed class StreamSlotTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20", ["X-Mock-Completion-Tokens"] = "1000" };

    private static Action<Dictionary<string, string?>> Limits(string route, int concurrent) => s =>
    {
        s[$"ReverseProxy:Routes:{route}:RateLimiterPolicy"] = "per-tenant";
        s["Gateway:RateLimits:TokenLimit"] = "10000";
        s["Gateway:RateLimits:TokensPerPeriod"] = "1";
        s["Gateway:RateLimits:ReplenishmentPeriod"] = "01:00:00";
        s["Gateway:RateLimits:MaxConcurrentStreams"] = concurrent.ToString(CultureInfo.InvariantCulture);
    };

    private static string NewRoute() => "slot" + Guid.NewGuid().ToString("N")[..8];

    private static HttpRequestMessage Long(string sessionId) =>
        StreamReading.ChatRequest("/v1/chat/completions", "long " + sessionId, sessionId, maxTokens: 1000, authorization: "Bearer alice", headers: Slow);

    private static HttpRequestMessage Stop(string sessionId)
    {
        var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
        stop.Headers.Authorization = AuthenticationHeaderValue.Parse("Bearer alice");
        return stop;
    }

    private static string? ErrorCode(string body) =>
        JsonDocument.Parse(body).RootElement.GetProperty("error").GetProperty("code").GetString();

    /// <summary>
    /// The most streams that were running upstream at any one instant, from the ledger (an entry runs
    /// from its start to its end; one still running has no end yet), where a stream and the one it
    /// superseded count once while both run: the gateway sends the newer request only after it has closed
    /// the older one's connection, but the model server takes a moment to notice that close, so at the
    /// upstream the two overlap by the abort's propagation (well under a millisecond to a millisecond or
    /// two here). That the two are only ever such a pair is checked by <see cref="AssertOverlapsAreHandOffs"/>.
    /// </summary>
    internal static int MaxLive(IReadOnlyList<LedgerEntry> entries)
    {
        var events = new List<(DateTimeOffset At, int Delta, string Stream)>();
        var unnamed = 0;
        foreach (var entry in entries)
        {
            var stream = entry.SessionId ?? $"\n{unnamed++}"; // without a session, every entry is its own stream
            events.Add((entry.StartedAt, +1, stream));
            events.Add((entry.EndedAt ?? DateTimeOffset.MaxValue, -1, stream));
        }

        // At equal instants starts count first: a start and an end at one tick is counted as an overlap.
        events.Sort((x, y) => x.At != y.At ? x.At.CompareTo(y.At) : y.Delta.CompareTo(x.Delta));
        var running = new Dictionary<string, int>();
        var most = 0;
        foreach (var (_, delta, stream) in events)
        {
            running[stream] = running.GetValueOrDefault(stream) + delta;
            if (running[stream] == 0)
            {
                running.Remove(stream);
            }

            most = Math.Max(most, running.Count);
        }

        return most;
    }

    /// <summary>Two entries of one session overlap only as a hand-off: the older one was aborted (it
    /// ended cancelled, after the newer began), and never three at once.</summary>
    internal static void AssertOverlapsAreHandOffs(IReadOnlyList<LedgerEntry> entries)
    {
        foreach (var session in entries.Where(e => e.SessionId is not null).GroupBy(e => e.SessionId))
        {
            var ordered = session.OrderBy(e => e.StartedAt).ToList();
            for (var i = 1; i < ordered.Count; i++)
            {
                var (older, newer) = (ordered[i - 1], ordered[i]);
                if (older.EndedAt is not { } end || end > newer.StartedAt)
                {
                    Assert.True(older.Cancelled && older.EndedAt is not null,
                        $"session {session.Key}: an entry still ran, not aborted, when the next began: {Describe(ordered)}");
                    Assert.True(i < 2 || ordered[i - 2].EndedAt <= newer.StartedAt,
                        $"session {session.Key}: three entries at once: {Describe(ordered)}");
                }
            }
        }
    }

    private static string Describe(IReadOnlyList<LedgerEntry> entries) =>
        string.Join("; ", entries.Select(e => $"{e.SessionId} {e.StartedAt:HH:mm:ss.ffffff}-{e.EndedAt:HH:mm:ss.ffffff}"));

    [Fact]
    public async Task LimitTwo_AlternatingSupersedesAndNewKeys_NewKeysRefused_SupersedeAtTheLimitServed_NeverThreeUpstream()
    {
        // The audit's sequence: a supersede took no slot and the stream it replaced gave its slot back
        // when it ended, so each supersede made room for one more new key: 4 live streams under a limit of 2.
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: Limits(route, concurrent: 2), routeId: route);
        using var a1 = await StreamReading.SendAsync(stack.Client, Long("a"));
        using var b1 = await StreamReading.SendAsync(stack.Client, Long("b"));
        Assert.Equal(200, (int)a1.StatusCode);
        Assert.Equal(200, (int)b1.StatusCode);

        // At the limit, typing again in conversation a is served: it takes over a's slot.
        using var a2 = await StreamReading.SendAsync(stack.Client, Long("a"));
        Assert.Equal(200, (int)a2.StatusCode);
        Assert.Contains("request_superseded", (await StreamReading.ReadToEndAsync(a1)).DataEvents[^1]);

        // The replaced stream has ended, and gave back no slot: a new conversation is over the limit.
        using var c = await StreamReading.SendAsync(stack.Client, Long("c"));
        Assert.Equal(429, (int)c.StatusCode);
        Assert.Equal("concurrency_limit_exceeded", ErrorCode(await c.Content.ReadAsStringAsync()));

        using var b2 = await StreamReading.SendAsync(stack.Client, Long("b"));
        Assert.Equal(200, (int)b2.StatusCode);
        Assert.Contains("request_superseded", (await StreamReading.ReadToEndAsync(b1)).DataEvents[^1]);
        using var d = await StreamReading.SendAsync(stack.Client, Long("d"));
        Assert.Equal(429, (int)d.StatusCode);

        // A stop gives the slot back once the stopped stream has ended.
        using (var stop = await stack.Client.SendAsync(Stop("a")))
        {
            Assert.Equal(200, (int)stop.StatusCode);
        }

        Assert.Contains("request_stopped", (await StreamReading.ReadToEndAsync(a2)).DataEvents[^1]);
        // (The model server notices the stopped request's close a moment after the gateway made it.)
        await stack.WaitForEntryAsync("a", entry => entry.EndedAt is not null, index: 1);
        using var e = await StreamReading.SendAsync(stack.Client, Long("e"));
        Assert.Equal(200, (int)e.StatusCode);

        // A dropped client gives its slot back once the gateway has finished with it; until then a new
        // conversation is refused (a 429 reaches no model server), after it one is served.
        b2.Dispose();
        await stack.WaitForEntryAsync("b", entry => entry.EndedAt is not null, index: 1);
        using var f = await AdmittedAsync(stack.Client, () => Long("f"));

        var entries = stack.Ledger.Snapshot();
        Assert.DoesNotContain(entries, entry => entry.SessionId is "c" or "d");
        AssertOverlapsAreHandOffs(entries);
        Assert.True(MaxLive(entries) <= 2, $"{MaxLive(entries)} live upstream streams: {Describe(entries)}");
    }

    [Fact]
    public async Task LimitTwo_SeededMixOfSupersedesStopsDropsNewKeysAndRacingRequests_NeverMoreThanTwoUpstream_TypingAgainNeverRefused()
    {
        // A seeded sequence over four conversations: a new stream (a new conversation, or typing again in
        // one that streams), two requests for one conversation at once, a stop, a stop racing a newer
        // request, a dropped client. After each step the test waits until the ledger runs exactly streams
        // it holds, one per conversation (an aborted stream's end reaches the model server a moment after
        // the gateway closed it; a new conversation admitted in that moment would be counted against it).
        var route = NewRoute();
        await using var stack = await Stack.StartAsync(configure: Limits(route, concurrent: 2), routeId: route);
        var keys = new[] { "k0", "k1", "k2", "k3" };
        var held = new Dictionary<string, HttpResponseMessage>(); // ledger id -> the response streaming it
        var uncertain = new HashSet<string>(); // a racing stop may have ended the held stream of these
        var readers = new List<Task>();
        var random = new Random(20240611);
        int served = 0, refused = 0, pairs = 0;

        bool Streams(string key) =>
            !uncertain.Contains(key) && stack.Ledger.Snapshot().Any(e => e.SessionId == key && e.EndedAt is null && held.ContainsKey(e.Id));

        void Keep(HttpResponseMessage[] responses)
        {
            foreach (var response in responses)
            {
                switch ((int)response.StatusCode)
                {
                    case 200:
                        served++;
                        held[response.Headers.GetValues("X-Mock-Request-Id").Single()] = response;
                        readers.Add(StreamReading.ReadToEndAsync(response)); // a replaced stream's reader sees its notice
                        break;
                    case 429:
                        refused++;
                        response.Dispose();
                        break;
                    default:
                        Assert.Equal(409, (int)response.StatusCode); // superseded before it began
                        response.Dispose();
                        break;
                }
            }
        }

        for (var step = 0; step < 40; step++)
        {
            var key = keys[random.Next(keys.Length)];
            var typingAgain = Streams(key);
            var op = random.Next(6);
            uncertain.Remove(key);
            switch (op)
            {
                case 0 or 1:
                    var one = await StreamReading.SendAsync(stack.Client, Long(key));
                    Assert.False(typingAgain && (int)one.StatusCode == 429, $"step {step}: typing again in {key}, which streams, was refused");
                    Keep([one]);
                    break;
                case 2: // two requests for one conversation at once (a double click, a retry)
                    var pair = await Task.WhenAll(
                        StreamReading.SendAsync(stack.Client, Long(key)), StreamReading.SendAsync(stack.Client, Long(key)));
                    Assert.False(typingAgain && pair.Any(r => (int)r.StatusCode == 429), $"step {step}: typing again in {key}, which streams, was refused");
                    pairs++;
                    Keep(pair);
                    break;
                case 3:
                    (await stack.Client.SendAsync(Stop(key))).Dispose();
                    break;
                case 4: // a stop racing a newer request for the same conversation
                    var stop = stack.Client.SendAsync(Stop(key));
                    var racing = await StreamReading.SendAsync(stack.Client, Long(key));
                    Assert.False(typingAgain && (int)racing.StatusCode == 429, $"step {step}: typing again in {key}, which streams, was refused");
                    Keep([racing]);
                    (await stop).Dispose();
                    uncertain.Add(key);
                    break;
                default: // the client goes away
                    foreach (var entry in stack.Ledger.Snapshot().Where(e => e.SessionId == key && e.EndedAt is null))
                    {
                        if (held.Remove(entry.Id, out var dropped))
                        {
                            dropped.Dispose();
                        }
                    }

                    break;
            }

            // Settled: every stream still running upstream is one the client holds, one per conversation.
            await stack.Ledger.WaitForAsync(all =>
            {
                var live = all.Where(e => e.EndedAt is null).ToList();
                return live.All(e => held.ContainsKey(e.Id)) && live.Select(e => e.SessionId).Distinct().Count() == live.Count;
            }, Wait.Timeout);
        }

        foreach (var response in held.Values)
        {
            response.Dispose();
        }

        await Task.WhenAll(readers);
        var entries = await stack.Ledger.WaitForAsync(all => all.All(entry => entry.EndedAt is not null), Wait.Timeout);

        AssertOverlapsAreHandOffs(entries);
        Assert.True(MaxLive(entries) <= 2, $"{MaxLive(entries)} live upstream streams: {Describe(entries)}");
        Assert.True(served > 5 && refused > 0 && pairs > 0, $"served {served}, refused {refused}, racing pairs {pairs}: the mix did not reach the limit");
    }

    /// <summary>Sends until the request is admitted: a refused one (429) reaches no model server, so
    /// trying again changes nothing the test counts. Used where a slot comes back after something the
    /// client cannot see the end of (its own connection dropped).</summary>
    private static async Task<HttpResponseMessage> AdmittedAsync(HttpClient client, Func<HttpRequestMessage> request)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (true)
        {
            var response = await StreamReading.SendAsync(client, request(), deadline.Token);
            if ((int)response.StatusCode != 429)
            {
                Assert.Equal(200, (int)response.StatusCode);
                return response;
            }

            response.Dispose();
            await Task.Yield();
        }
    }
}
