using StackExchange.Redis;

namespace Gateway.Sessions.Redis;

/// <summary>The names of the registry's Redis keys, all under the deployment's prefix (<c>Gateway:Sessions:RedisPrefix</c>);
/// a key carries a key hash, never a session id. Every key of one session key has that hash as its hash tag, so a
/// Redis Cluster keeps them in one slot and one script may touch them all.</summary>
internal sealed class RedisKeys(string prefix)
{
    public RedisKey Epoch(string hash) => $"{prefix}:{{{hash}}}:epoch";

    public RedisKey Owner(string hash) => $"{prefix}:{{{hash}}}:owner";

    /// <summary>Equals the owner record while that owner waits in its debounce window (reject routes only).</summary>
    public RedisKey Held(string hash) => $"{prefix}:{{{hash}}}:held";
}
