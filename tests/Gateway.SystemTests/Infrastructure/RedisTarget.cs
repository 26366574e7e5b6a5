using StackExchange.Redis;

namespace Gateway.Tests.Infrastructure;

/// <summary>What a Redis test runs on: one redis-server, or a Redis Cluster (three masters with a replica each).
/// The gateway is given either with the same setting, <c>Gateway:Sessions:Redis</c>.</summary>
public enum RedisKind
{
    Single,
    Cluster,
}

/// <summary>The real Redis of one test, of either <see cref="RedisKind"/>, on loopback.</summary>
internal sealed class RedisTarget : IAsyncDisposable
{
    private readonly RedisServer? _server;
    private readonly RedisCluster? _cluster;

    private RedisTarget(RedisServer? server, RedisCluster? cluster)
    {
        _server = server;
        _cluster = cluster;
    }

    public RedisKind Kind => _cluster is null ? RedisKind.Single : RedisKind.Cluster;

    /// <summary>The one redis-server (for the tests that kill, pause or restart it).</summary>
    public RedisServer Server => _server ?? throw new InvalidOperationException("this test runs on a Redis Cluster, not one redis-server");

    public RedisCluster Cluster => _cluster ?? throw new InvalidOperationException("this test runs on one redis-server, not a cluster");

    /// <summary>The gateway's <c>Gateway:Sessions:Redis</c> setting: one endpoint, or every node of the cluster.</summary>
    public string ConnectionString => _server?.ConnectionString ?? _cluster!.ConnectionString;

    public static async Task<RedisTarget> StartAsync(RedisKind kind) => kind == RedisKind.Cluster
        ? new RedisTarget(null, await RedisCluster.StartAsync())
        : new RedisTarget(await RedisServer.StartAsync(), null);

    /// <summary>The keys matching <paramref name="pattern"/> on every master: a cluster spreads them over its masters.
    /// Distinct: a node whose role the connection has not learnt yet may be a replica holding a master's copy.</summary>
    public async Task<List<string>> KeysAsync(string pattern)
    {
        await using var connection = await ConnectionMultiplexer.ConnectAsync(ConnectionString);
        var keys = new List<string>();
        foreach (var server in connection.GetServers().Where(s => s.IsConnected && !s.IsReplica))
        {
            await foreach (var key in server.KeysAsync(pattern: pattern))
            {
                keys.Add(key.ToString());
            }
        }

        return [.. keys.Distinct(StringComparer.Ordinal)];
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}
