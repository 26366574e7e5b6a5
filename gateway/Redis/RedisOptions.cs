using System.ComponentModel.DataAnnotations;
using StackExchange.Redis;

namespace Gateway.Redis;

/// <summary>The Redis every replica shares (<see cref="SharedRedis"/>): one instance or a cluster. Bound from
/// <c>Gateway:Sessions</c> (beside the key settings), where the session registry introduced it.</summary>
internal sealed class RedisOptions : IValidatableObject
{
    public const string SectionName = "Gateway:Sessions";

    /// <summary>A StackExchange.Redis connection string: one instance (<c>redis:6379</c>,
    /// <c>host:6380,password=...,ssl=true</c>) or some nodes of a Redis Cluster (<c>node-0:6379,node-1:6379,node-2:6379</c>;
    /// the client discovers the rest and follows failovers). Empty: the in-process registry, which sees only this
    /// replica's streams, so run one replica or route each session to one replica.</summary>
    public string Redis { get; set; } = "";

    /// <summary>Prefix of every key and of the channel, so deployments sharing one Redis never see each
    /// other's sessions. Letters, digits, <c>_ . -</c>.</summary>
    [RegularExpression("^[A-Za-z0-9_.-]{1,64}$", ErrorMessage = "Gateway:Sessions:RedisPrefix must be 1-64 letters, digits, '_', '.' or '-'.")]
    public string RedisPrefix { get; set; } = "llmgw";

    /// <summary>The longest any Redis call may take before this replica treats Redis as unavailable and
    /// falls back to local-only supersede. No request waits on it except an explicit stop.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:00:10", ErrorMessage = "Gateway:Sessions:RedisTimeout must be between 00:00:00.010 and 00:00:10.")]
    public TimeSpan RedisTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>Lifetime of a stream's owner record in Redis, refreshed every third of it while the stream
    /// lives; after a replica dies its records outlive it by at most this.</summary>
    [Range(typeof(TimeSpan), "00:00:03", "00:10:00", ErrorMessage = "Gateway:Sessions:RedisOwnerTtl must be between 00:00:03 and 00:10:00.")]
    public TimeSpan RedisOwnerTtl { get; set; } = TimeSpan.FromSeconds(30);

    public bool Enabled => !string.IsNullOrWhiteSpace(Redis);

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        if (!Enabled)
        {
            yield break;
        }

        string? error = null;
        try
        {
            if (ConfigurationOptions.Parse(Redis).EndPoints.Count == 0)
            {
                error = "names no endpoint";
            }
        }
        catch (ArgumentException ex)
        {
            error = ex.Message;
        }

        if (error is not null)
        {
            // The message of a parse error never repeats the string, which may hold a password.
            yield return new ValidationResult($"Gateway:Sessions:Redis is not a valid Redis connection string: {error}");
        }
    }
}
