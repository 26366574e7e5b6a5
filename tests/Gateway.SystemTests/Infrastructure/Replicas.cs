using Gateway.Redis;
using Gateway.Sessions;
using Gateway.Sessions.Redis;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MockLlm;

namespace Gateway.Tests.Infrastructure;

/// <summary>One gateway replica on the Redis registry: its host, a client, and what it logged.</summary>
internal sealed class Replica : IAsyncDisposable
{
    private Replica(GatewayHost host, LogCapture logs)
    {
        Host = host;
        Logs = logs;
        Client = StreamReading.NewClient(host.BaseAddress);
    }

    public GatewayHost Host { get; }

    public HttpClient Client { get; }

    public LogCapture Logs { get; }

    public RedisSessionRegistry Registry => Host.Services.GetRequiredService<RedisSessionRegistry>();

    /// <summary>The replica's own leases (the in-process registry under the Redis one).</summary>
    public SessionRegistry Local => Host.Services.GetRequiredService<SessionRegistry>();

    /// <summary>The replica's shared Redis connection: its availability, its id, the messages it received.</summary>
    public SharedRedis Redis => Host.Services.GetRequiredService<SharedRedis>();

    public static async Task<Replica> StartAsync(Uri upstream, string redis, string prefix = "llmgw", TimeSpan? redisTimeout = null,
        string routeId = "llm", Action<Dictionary<string, string?>>? configure = null, Action<WebApplicationBuilder>? builder = null)
    {
        var logs = new LogCapture();
        var host = await GatewayHost.StartAsync(upstream, configure: settings =>
        {
            settings["Gateway:Sessions:Redis"] = redis;
            settings["Gateway:Sessions:RedisPrefix"] = prefix;
            if (redisTimeout is { } timeout)
            {
                settings["Gateway:Sessions:RedisTimeout"] = timeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture);
            }

            configure?.Invoke(settings);
        }, builder: web =>
        {
            web.Logging.AddProvider(logs);
            builder?.Invoke(web);
        }, routeId);
        return new Replica(host, logs);
    }

    /// <summary>Waits until the registry reports <paramref name="available"/> (it probes Redis in the background).</summary>
    public async Task WaitAvailableAsync(bool available = true)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        await Redis.WaitForAvailabilityAsync(available, deadline.Token);
    }

    /// <summary>The value of <c>llm_gateway_redis_available</c> on this replica's /metrics, or null when absent.</summary>
    public async Task<double?> AvailabilityGaugeAsync()
    {
        var samples = await PromText.ParseAsync(Client);
        return samples.FirstOrDefault(s => s.Name == "llm_gateway_redis_available")?.Value;
    }

    /// <summary>Waits for the registry to reach the state, then checks the scraped gauge says the same.</summary>
    public async Task WaitGaugeAsync(double expected)
    {
        await WaitAvailableAsync(expected == 1);
        Assert.Equal(expected, await AvailabilityGaugeAsync());
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Host.DisposeAsync();
    }
}

/// <summary>A real redis-server (or Redis Cluster), one mock model server, and two gateway replicas A and B sharing them.</summary>
internal sealed class Replicas : IAsyncDisposable
{
    private Replicas(RedisTarget target, MockLlmServer mock, Replica a, Replica b)
    {
        Target = target;
        Mock = mock;
        A = a;
        B = b;
    }

    /// <summary>The Redis the replicas share, of either kind.</summary>
    public RedisTarget Target { get; }

    /// <summary>The one redis-server, for the tests that kill, pause or restart it (throws on a cluster).</summary>
    public RedisServer Redis => Target.Server;

    public MockLlmServer Mock { get; }

    public Replica A { get; }

    public Replica B { get; }

    /// <summary>Starts Redis of <paramref name="kind"/>, the mock (<paramref name="mock"/>, else 40 tokens/s) and
    /// replicas A and B with <paramref name="configure"/> and <paramref name="builder"/> applied to both, and returns
    /// once both see Redis.</summary>
    public static async Task<Replicas> StartAsync(string prefixA = "llmgw", string prefixB = "llmgw", TimeSpan? redisTimeout = null,
        MockLlmOptions? mock = null, string routeId = "llm", Action<Dictionary<string, string?>>? configure = null,
        Action<WebApplicationBuilder>? builder = null, RedisKind kind = RedisKind.Single)
    {
        var redis = await RedisTarget.StartAsync(kind);
        var server = await MockLlmServer.StartAsync(mock ?? new MockLlmOptions { TokensPerSecond = 40, TimeToFirstTokenMs = 20 });
        var a = await Replica.StartAsync(server.BaseAddress, redis.ConnectionString, prefixA, redisTimeout, routeId, configure, builder);
        var b = await Replica.StartAsync(server.BaseAddress, redis.ConnectionString, prefixB, redisTimeout, routeId, configure, builder);
        await a.WaitAvailableAsync();
        await b.WaitAvailableAsync();
        return new Replicas(redis, server, a, b);
    }

    public Task<LedgerEntry> WaitForEntryAsync(string sessionId, Func<LedgerEntry, bool> predicate, int index = 0) =>
        Wait.ForEntryAsync(Mock.Ledger, sessionId, predicate, index);

    public async ValueTask DisposeAsync()
    {
        await A.DisposeAsync();
        await B.DisposeAsync();
        await Mock.DisposeAsync();
        await Target.DisposeAsync();
    }
}

/// <summary>
/// The Redis tests run one at a time, and after the parallel tests: every gateway host in this process
/// exports through meters of the same name (an OpenTelemetry MeterProvider listens by name across the
/// process), so two hosts with a Redis registry at once would share one <c>llm_gateway_redis_available</c>
/// series, and a kill-and-restart of redis-server is timed more reliably on a quiet machine.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RedisCollection
{
    public const string Name = "Redis";
}
