using StackExchange.Redis;

namespace Gateway.Sessions.Redis;

/// <summary>The names of the Redis keys and channels of one deployment, all under its prefix
/// (<c>Gateway:Sessions:RedisPrefix</c>); a key carries a key hash, never a session id.</summary>
internal sealed class RedisKeys(string prefix)
{
    /// <summary>The deployment's channel: claims, stops and probes, read in order by every replica.</summary>
    public RedisChannel Channel { get; } = RedisChannel.Literal($"{prefix}:sessions");

    /// <summary>A replica's ack channel: <c>stop-id replica count</c> from replicas that stopped streams.</summary>
    public RedisChannel AckChannel(string replica) => RedisChannel.Literal($"{prefix}:acks:{replica}");

    public RedisKey Epoch(string hash) => $"{prefix}:{{{hash}}}:epoch";

    public RedisKey Owner(string hash) => $"{prefix}:{{{hash}}}:owner";

    /// <summary>Equals the owner record while that owner waits in its debounce window (reject routes only).</summary>
    public RedisKey Held(string hash) => $"{prefix}:{{{hash}}}:held";
}
