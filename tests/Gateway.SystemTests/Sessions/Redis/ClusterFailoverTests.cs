using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Gateway.Tests.Infrastructure;
using MockLlm;
using StackExchange.Redis;

namespace Gateway.Tests.Sessions.Redis;

/// <summary>
/// Two gateway replicas on a real Redis Cluster (three masters with a replica each, on loopback), with the same
/// setting as one instance: supersede and stop work on keys in every master's slots, and one master killed mid-run
/// fails claims in flight over to local-only, brings them back when a replica took over, and leaves never two live
/// streams for one key and nothing behind.
/// </summary>
[Collection(RedisCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class ClusterFailoverTests
{
    private const string Alice = "Bearer alice";
    private const int PerMaster = 3;

    [Fact]
    public async Task MasterKilledMidRun_TwoReplicasSupersedeAndStop_OneLiveStreamPerKeyOnceSettled_NothingLeaks()
    {
        await using var cluster = await RedisCluster.StartAsync(nodeTimeout: TimeSpan.FromMilliseconds(1000));
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 20 });
        // A short owner TTL: the records are refreshed every second, so a message lost with the master is found soon.
        void Settings(Dictionary<string, string?> settings) => settings["Gateway:Sessions:RedisOwnerTtl"] = "00:00:03";
        await using var a = await Replica.StartAsync(mock.BaseAddress, cluster.ConnectionString, configure: Settings);
        await using var b = await Replica.StartAsync(mock.BaseAddress, cluster.ConnectionString, configure: Settings);
        await a.WaitAvailableAsync();
        await b.WaitAvailableAsync();

        var sessions = await SessionsInEverySlotRangeAsync(cluster);
        var streams = new Dictionary<string, HttpResponseMessage>();
        var opened = new Dictionary<string, int>();
        try
        {
            // Every key on A, then superseded from B: cross-replica supersede on every master.
            foreach (var session in sessions)
            {
                streams[session] = await OpenAsync(a, session, opened, mock);
            }

            foreach (var session in sessions)
            {
                await AssertSupersededAsync(streams, session, await OpenAsync(b, session, opened, mock));
            }

            // The master that holds B's own channel (and keys of its own) dies with streams live on B; A supersedes
            // every key at once. The claims cannot wait out the failover (the Redis timeout, 250 ms, is shorter than
            // the node timeout): they fail over to local-only, every request is still answered, and B's older
            // streams run on for now. A message sent to B meanwhile would be lost: B finds out by its records.
            var victim = await MasterOfAsync(cluster, $"llmgw:replica:{{{b.Redis.ReplicaId}}}");
            await cluster.KillMasterAsync(victim);
            var older = sessions.ToDictionary(s => s, s => streams[s]);
            var during = await Task.WhenAll(sessions.Select(s => StreamReading.SendAsync(a.Client, CrossReplicaTests.Long(s, Alice))));
            for (var i = 0; i < sessions.Count; i++)
            {
                Assert.Equal(200, (int)during[i].StatusCode);
                streams[sessions[i]] = during[i];
                opened[sessions[i]]++;
            }

            Assert.Contains(sessions, s => a.Registry.EpochOf(Key(s)) == 0); // the victim's keys at least were claimed locally only

            // Settled: the local-only claims were claimed in Redis, the newest (A's) won, and every older stream on B
            // ended with the superseded notice; none was left running beside A's.
            await cluster.WaitSettledAsync();
            await a.WaitAvailableAsync();
            await b.WaitAvailableAsync();
            foreach (var session in sessions)
            {
                using var stream = older[session];
                using var deadline = new CancellationTokenSource(Wait.Timeout);
                Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(stream, deadline.Token)));
            }

            await mock.Ledger.WaitForAsync(all => sessions.All(s => all.Count(e => e.SessionId == s && e.EndedAt is null) == 1
                && all.Count(e => e.SessionId == s) == opened[s]), Wait.Timeout);
            foreach (var session in sessions)
            {
                var live = mock.Ledger.Snapshot().Where(e => e.SessionId == session).ToList();
                Assert.Null(live[^1].EndedAt); // the newest, A's, is the one left
                Assert.True(a.Registry.EpochOf(Key(session)) > 0, $"{session}: A's stream holds no epoch in Redis once settled");
            }

            // After the failover, on every master (the promoted replica among them): B supersedes A, then A stops all.
            foreach (var session in sessions)
            {
                await AssertSupersededAsync(streams, session, await OpenAsync(b, session, opened, mock));
            }

            foreach (var session in sessions)
            {
                using var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{session}/cancel");
                stop.Headers.Authorization = AuthenticationHeaderValue.Parse(Alice);
                using var stopped = await a.Client.SendAsync(stop);
                Assert.Equal(200, (int)stopped.StatusCode);
                Assert.Equal(1, JsonDocument.Parse(await stopped.Content.ReadAsStringAsync()).RootElement.GetProperty("cancelled").GetInt32());
                using var deadline = new CancellationTokenSource(Wait.Timeout);
                Assert.Equal("request_stopped", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(streams[session], deadline.Token)));
            }

            await mock.Ledger.WaitForAsync(all => all.Where(e => e.SessionId is { } id && sessions.Contains(id)).All(e => e.EndedAt is not null), Wait.Timeout);
            using var settled = new CancellationTokenSource(Wait.Timeout);
            foreach (var replica in new[] { a, b })
            {
                await replica.Local.WhenEmptyAsync(settled.Token);
                Assert.Equal(0, replica.Registry.TrackedCount);
            }
        }
        finally
        {
            foreach (var stream in streams.Values)
            {
                stream.Dispose();
            }
        }
    }

    /// <summary>Opens a long stream of <paramref name="session"/> on <paramref name="replica"/> and waits for its first token.</summary>
    private static async Task<HttpResponseMessage> OpenAsync(Replica replica, string session, Dictionary<string, int> opened, MockLlmServer mock)
    {
        var response = await StreamReading.SendAsync(replica.Client, CrossReplicaTests.Long(session, Alice));
        Assert.Equal(200, (int)response.StatusCode);
        var index = opened.GetValueOrDefault(session);
        opened[session] = index + 1;
        await Wait.ForEntryAsync(mock.Ledger, session, e => e.TokensSent >= 1, index);
        return response;
    }

    /// <summary>The stream held for <paramref name="session"/> ends with the superseded notice; <paramref name="newer"/> takes its place.</summary>
    private static async Task AssertSupersededAsync(Dictionary<string, HttpResponseMessage> streams, string session, HttpResponseMessage newer)
    {
        using var older = streams[session];
        streams[session] = newer;
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        Assert.Equal("request_superseded", CrossReplicaTests.ErrorType(await StreamReading.ReadToEndAsync(older, deadline.Token)));
    }

    /// <summary><see cref="PerMaster"/> session ids whose keys live on each master, by their hash slot.</summary>
    private static async Task<List<string>> SessionsInEverySlotRangeAsync(RedisCluster cluster)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConnectionString);
        var byMaster = new Dictionary<string, List<string>>();
        for (var i = 0; byMaster.Count < 3 || byMaster.Values.Any(l => l.Count < PerMaster); i++)
        {
            if (i > 10_000)
            {
                throw new InvalidOperationException($"keys found on {byMaster.Count} masters only");
            }

            var session = $"slot-{i}";
            var master = redis.GetServer(OwnerKey(session)).EndPoint.ToString()!;
            var list = byMaster.TryGetValue(master, out var found) ? found : byMaster[master] = [];
            if (list.Count < PerMaster)
            {
                list.Add(session);
            }
        }

        return [.. byMaster.Values.SelectMany(l => l)];
    }

    /// <summary>The port of the master that serves <paramref name="key"/>'s hash slot (a channel's too: same slots).</summary>
    private static async Task<int> MasterOfAsync(RedisCluster cluster, RedisKey key)
    {
        await using var redis = await ConnectionMultiplexer.ConnectAsync(cluster.ConnectionString);
        return ((System.Net.IPEndPoint)redis.GetServer(key).EndPoint).Port;
    }

    private static SessionKey Key(string session) => SessionKey.Create("llm", Alice, session);

    private static RedisKey OwnerKey(string session) => $"llmgw:{{{RedisSessionRegistry.Hash(Key(session).Value)}}}:owner";
}
