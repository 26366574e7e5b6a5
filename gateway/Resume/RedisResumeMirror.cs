using System.Buffers.Binary;
using System.Globalization;
using Gateway.Redis;
using Gateway.Sessions;
using Gateway.Utilities;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gateway.Resume;

/// <summary>
/// A resumable stream's events in Redis, so that a resume landing on another replica is served there. Per stream
/// (its random stream id in a hash tag, so that every key of one stream shares a hash slot and a Redis Cluster
/// serves it from one node):
/// <list type="bullet">
/// <item><c>{prefix}:resume:{sid}:events</c>, a Redis Stream whose entry ids are <c>0-{n}</c>, the event's number:
/// a resume reads the events after its id with one <c>XRANGE</c>, and the log's own trimming is an
/// <c>XTRIM MINID</c>;</item>
/// <item><c>…:meta</c>, a hash: the SHA-256 of the session key (a resume with another tenant's or session's key is
/// refused), the content type, the state and, once ended, the last event's number, and the highest number a
/// remote reader delivered (for the undelivered-tokens figure);</item>
/// <item><c>…:reader</c>, the current remote reader's token with a short TTL that the reader refreshes: the owner
/// does not let a stream expire while it is set, and a reader that finds another's token was superseded;</item>
/// <item>the sharded channel <c>{prefix}:resume:{sid}</c> (<c>SPUBLISH</c>, Redis 7): each event as it is added,
/// so a reader follows the live stream without polling.</item>
/// </list>
/// The owner writes fire-and-forget, in order on one connection; while Redis is away it writes nothing, and a
/// resume elsewhere is answered <c>resume_unavailable</c>. The owner stays the only one that decides the stream:
/// its upstream, its window, its bounds.
/// </summary>
internal sealed class RedisResumeMirror(SharedRedis redis)
{
    /// <summary>How long a remote reader's token lives unless refreshed; it refreshes at a third of it.</summary>
    public static readonly TimeSpan ReaderTtl = TimeSpan.FromSeconds(3);

    /// <summary>True when this deployment shares sessions through Redis.</summary>
    public bool Enabled => redis.Enabled;

    public IDatabase? Database => redis.Database;

    /// <summary>How long Redis keeps a live stream's keys before the owner refreshes them.</summary>
    private static readonly TimeSpan LiveTtl = TimeSpan.FromMinutes(15);

    public RedisKey Events(string streamId) => $"{Prefix}:resume:{{{streamId}}}:events";

    public RedisKey Meta(string streamId) => $"{Prefix}:resume:{{{streamId}}}:meta";

    public RedisKey Reader(string streamId) => $"{Prefix}:resume:{{{streamId}}}:reader";

    public RedisChannel Channel(string streamId) => RedisChannel.Sharded($"{Prefix}:resume:{{{streamId}}}");

    /// <summary>The hash a stream's meta holds for its session key: only the same route, credential and session find it.</summary>
    public static string KeyHash(SessionKey key) => Hashes.Sha256Hex(key.Value, 16);

    private string Prefix => redis.KeyPrefix;

    /// <summary>The stream's first event: its meta, with the content type a resume answers with.</summary>
    public void Started(ResumeLog log)
    {
        if (Database is not { } db)
        {
            return;
        }

        db.HashSetAsync(Meta(log.StreamId),
            [new("k", KeyHash(log.Key)), new("ct", log.ContentType ?? "text/event-stream"), new("s", "live"), new("f", 1)], CommandFlags.FireAndForget);
        db.KeyExpireAsync(Meta(log.StreamId), LiveTtl, CommandFlags.FireAndForget);
    }

    /// <summary>Event <paramref name="sequence"/> (its bytes as clients get them, and the tokens counted up to it).</summary>
    public void Appended(ResumeLog log, long sequence, byte[] bytes, long tokens)
    {
        if (Database is not { } db)
        {
            return;
        }

        var events = Events(log.StreamId);
        db.StreamAddAsync(events, [new("e", bytes), new("t", tokens)], messageId: Id(sequence), flags: CommandFlags.FireAndForget);
        if (sequence % 64 == 1)
        {
            db.KeyExpireAsync(events, LiveTtl, CommandFlags.FireAndForget);
            db.KeyExpireAsync(Meta(log.StreamId), LiveTtl, CommandFlags.FireAndForget);
        }

        var message = new byte[8 + bytes.Length];
        BinaryPrimitives.WriteInt64BigEndian(message, sequence);
        bytes.CopyTo(message, 8);
        db.Multiplexer.GetSubscriber().PublishAsync(Channel(log.StreamId), message, CommandFlags.FireAndForget);
    }

    /// <summary>The log forgot its events before <paramref name="first"/>.</summary>
    public void Trimmed(ResumeLog log, long first)
    {
        if (Database is { } db)
        {
            db.StreamTrimByMinIdAsync(Events(log.StreamId), Id(first), flags: CommandFlags.FireAndForget);
            db.HashSetAsync(Meta(log.StreamId), "f", first, flags: CommandFlags.FireAndForget);
        }
    }

    /// <summary>The stream ended (<paramref name="state"/>, and for an abort its reason): kept for the window when it
    /// finished, and a reader elsewhere is told at once.</summary>
    public void Ended(ResumeLog log, LogState state, string reason, long last, TimeSpan keep)
    {
        if (Database is not { } db)
        {
            return;
        }

        var text = state == LogState.Finished ? "finished" : "aborted";
        db.HashSetAsync(Meta(log.StreamId), [new("s", text), new("r", reason), new("l", last)], CommandFlags.FireAndForget);
        db.KeyExpireAsync(Meta(log.StreamId), keep, CommandFlags.FireAndForget);
        db.KeyExpireAsync(Events(log.StreamId), keep, CommandFlags.FireAndForget);
        var message = new byte[8 + 1];
        BinaryPrimitives.WriteInt64BigEndian(message, -last);
        message[8] = state == LogState.Finished ? (byte)'f' : (byte)'a';
        db.Multiplexer.GetSubscriber().PublishAsync(Channel(log.StreamId), message, CommandFlags.FireAndForget);
    }

    /// <summary>A reader attached here: a reader on another replica finds its token replaced, and ends as superseded.</summary>
    public void ReaderHere(ResumeLog log)
    {
        Database?.StringSetAsync(Reader(log.StreamId), "here", ReaderTtl, flags: CommandFlags.FireAndForget);
    }

    /// <summary>For a reader on the owner's replica: false once a reader elsewhere took the stream (its token replaced
    /// this replica's); else the token is refreshed. Redis away: true (nobody elsewhere can read it then).</summary>
    public async Task<bool> StillReadHereAsync(ResumeLog log)
    {
        if (Database is not { } db)
        {
            return true;
        }

        try
        {
            var value = await db.StringGetAsync(Reader(log.StreamId)).WaitAsync(Timeout);
            if (!value.IsNull && value != "here")
            {
                return false;
            }

            _ = db.StringSetAsync(Reader(log.StreamId), "here", ReaderTtl, flags: CommandFlags.FireAndForget);
            return true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return true;
        }
    }

    /// <summary>True while a reader on another replica holds the stream (its token has not lapsed).</summary>
    public async Task<bool> ReaderElsewhereAsync(ResumeLog log)
    {
        if (Database is not { } db)
        {
            return false;
        }

        try
        {
            return await db.KeyExistsAsync(Reader(log.StreamId)).WaitAsync(Timeout);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return false;
        }
    }

    /// <summary>The highest event number a reader on another replica delivered; 0 when none did or Redis is away.</summary>
    public async Task<long> DeliveredElsewhereAsync(ResumeLog log)
    {
        if (Database is not { } db)
        {
            return 0;
        }

        try
        {
            var value = await db.HashGetAsync(Meta(log.StreamId), "d").WaitAsync(Timeout);
            return value.TryParse(out long delivered) ? delivered : 0;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            return 0;
        }
    }

    /// <summary>How long a resume's read from Redis may take (<c>Gateway:Sessions:RedisTimeout</c>).</summary>
    public TimeSpan Timeout => redis.Timeout;

    public static RedisValue Id(long sequence) => string.Create(CultureInfo.InvariantCulture, $"0-{sequence}");

    public static long SequenceOf(RedisValue id)
    {
        var text = (string)id!;
        return long.Parse(text.AsSpan(text.IndexOf('-') + 1), CultureInfo.InvariantCulture);
    }
}
