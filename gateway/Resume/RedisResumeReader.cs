using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Gateway.Protocols;
using Gateway.Sessions;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Http.Features;
using StackExchange.Redis;

namespace Gateway.Resume;

/// <summary>
/// Serves a resume whose stream is owned by another replica, from <see cref="RedisResumeMirror"/>'s copy: the meta
/// says whether it may be resumed (same key hash, not aborted, the id within what is kept), one <c>XRANGE</c> gives
/// the events after the id, and the stream's sharded channel the live ones (a gap in them is filled from the
/// stream). The reader's token in Redis keeps the owner from expiring the stream, and tells an older reader that a
/// newer one took over. Nothing is sent upstream.
/// </summary>
internal sealed class RedisResumeReader(RedisResumeMirror mirror, GatewayMetrics metrics, TimeProvider time)
{
    private const string ReleaseReader = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

    /// <summary>What the stream's meta allowed; the response is written only when <see cref="AttachResult.Attached"/>.</summary>
    public async Task<AttachResult> ServeAsync(HttpContext context, string routeId, SessionKey key, ApiAdapter adapter, string streamId, long after,
        CancellationToken shutdown)
    {
        if (mirror.Database is not { } db || after < 1)
        {
            return AttachResult.Unavailable;
        }

        var token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        ChannelMessageQueue? queue = null;
        try
        {
            var meta = (await db.HashGetAllAsync(mirror.Meta(streamId)).WaitAsync(mirror.Timeout)).ToDictionary(e => (string)e.Name!, e => e.Value);
            if (!meta.TryGetValue("k", out var hash)
                || !CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes((string)hash!), Encoding.ASCII.GetBytes(RedisResumeMirror.KeyHash(key))))
            {
                return AttachResult.Unavailable;
            }

            var state = (string?)meta.GetValueOrDefault("s");
            var first = meta.TryGetValue("f", out var f) && f.TryParse(out long firstKept) ? firstKept : 1;
            var last = meta.TryGetValue("l", out var l) && l.TryParse(out long lastSeq) ? lastSeq : long.MaxValue;
            if (state is not ("live" or "finished") || after < first - 1 || after > last)
            {
                return AttachResult.Unavailable;
            }

            if (state == "finished" && after == last)
            {
                return AttachResult.AllDelivered;
            }

            await db.StringSetAsync(mirror.Reader(streamId), token, RedisResumeMirror.ReaderTtl).WaitAsync(mirror.Timeout);
            queue = await db.Multiplexer.GetSubscriber().SubscribeAsync(mirror.Channel(streamId)).WaitAsync(mirror.Timeout);
            var entries = await db.StreamRangeAsync(mirror.Events(streamId), RedisResumeMirror.Id(after + 1), "+").WaitAsync(mirror.Timeout);
            if (entries.Length == 0 ? !await ReachesAsync(db, streamId, after) : RedisResumeMirror.SequenceOf(entries[0].Id) != after + 1)
            {
                return AttachResult.Unavailable; // an id past the end, or events forgotten before it
            }

            metrics.ResumeOutcome(routeId, ResumeOutcomes.Resumed);
            var response = context.Response;
            response.StatusCode = StatusCodes.Status200OK;
            response.ContentType = (string?)meta.GetValueOrDefault("ct") ?? "text/event-stream";
            response.Headers.CacheControl = "no-cache";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            await StreamAsync(context, db, queue, streamId, token, adapter, after, entries, shutdown);
            return AttachResult.Attached;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException && !context.Response.HasStarted)
        {
            return AttachResult.Unavailable; // Redis away: only the owner's replica can resume it
        }
        finally
        {
            if (queue is not null)
            {
                await UnsubscribeAsync(queue);
                _ = db.ScriptEvaluateAsync(ReleaseReader, [mirror.Reader(streamId)], [token], CommandFlags.FireAndForget);
            }
        }
    }

    /// <summary>With nothing after <paramref name="after"/>: true when event <paramref name="after"/> itself is there (a live stream between two events).</summary>
    private async Task<bool> ReachesAsync(IDatabase db, string streamId, long after)
    {
        var newest = await db.StreamRangeAsync(mirror.Events(streamId), "-", "+", count: 1, messageOrder: Order.Descending).WaitAsync(mirror.Timeout);
        return newest.Length == 1 && RedisResumeMirror.SequenceOf(newest[0].Id) >= after;
    }

    private async Task StreamAsync(HttpContext context, IDatabase db, ChannelMessageQueue queue, string streamId, string token, ApiAdapter adapter,
        long after, StreamEntry[] entries, CancellationToken shutdown)
    {
        var body = context.Response.Body;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, shutdown);
        var cursor = after;
        var refresh = RedisResumeMirror.ReaderTtl / 3;
        var nextRefresh = time.GetTimestamp();
        try
        {
            await context.Response.StartAsync(stop.Token);
            cursor = await WriteAsync(body, entries, cursor, stop.Token);
            while (true)
            {
                if (time.GetElapsedTime(nextRefresh) >= TimeSpan.Zero)
                {
                    nextRefresh = time.GetTimestamp() + (long)(refresh.TotalSeconds * time.TimestampFrequency);
                    if ((string?)await db.StringGetAsync(mirror.Reader(streamId)).WaitAsync(mirror.Timeout, stop.Token) != token)
                    {
                        await ResumeReplay.WriteNoticeAsync(body, adapter, EndNotice.Superseded, stop.Token); // a newer resume took over
                        return;
                    }

                    _ = db.KeyExpireAsync(mirror.Reader(streamId), RedisResumeMirror.ReaderTtl, CommandFlags.FireAndForget);
                    _ = db.HashSetAsync(mirror.Meta(streamId), "d", cursor, flags: CommandFlags.FireAndForget);
                }

                using var tick = CancellationTokenSource.CreateLinkedTokenSource(stop.Token);
                tick.CancelAfter(refresh);
                ChannelMessage message;
                try
                {
                    message = await queue.ReadAsync(tick.Token);
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    continue; // time to refresh the token
                }

                var bytes = (byte[])message.Message!;
                var sequence = BinaryPrimitives.ReadInt64BigEndian(bytes);
                if (sequence < 0)
                {
                    // The end: whatever this reader has not seen yet, then the end mark or the reason it was aborted.
                    var rest = await db.StreamRangeAsync(mirror.Events(streamId), RedisResumeMirror.Id(cursor + 1), "+").WaitAsync(mirror.Timeout, stop.Token);
                    cursor = await WriteAsync(body, rest, cursor, stop.Token);
                    _ = db.HashSetAsync(mirror.Meta(streamId), "d", cursor, flags: CommandFlags.FireAndForget);
                    if (bytes[8] == (byte)'a')
                    {
                        var reason = (string?)await db.HashGetAsync(mirror.Meta(streamId), "r").WaitAsync(mirror.Timeout, stop.Token);
                        await ResumeReplay.WriteNoticeAsync(body, adapter, ResumeReplay.NoticeFor(reason), stop.Token);
                    }

                    return;
                }

                if (sequence == cursor + 1)
                {
                    await body.WriteAsync(bytes.AsMemory(8), stop.Token);
                    await body.FlushAsync(stop.Token);
                    cursor = sequence;
                }
                else if (sequence > cursor + 1)
                {
                    var missed = await db.StreamRangeAsync(mirror.Events(streamId), RedisResumeMirror.Id(cursor + 1), RedisResumeMirror.Id(sequence))
                        .WaitAsync(mirror.Timeout, stop.Token);
                    cursor = await WriteAsync(body, missed, cursor, stop.Token);
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            _ = db.HashSetAsync(mirror.Meta(streamId), "d", cursor, flags: CommandFlags.FireAndForget);
            if (!context.RequestAborted.IsCancellationRequested)
            {
                await ResumeReplay.TryWriteNoticeAsync(body, adapter, EndNotice.Shutdown);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or InvalidOperationException or RedisException or TimeoutException)
        {
            // the client went away, or Redis did: the owner keeps the stream for its window
        }
    }

    /// <summary>Writes the entries that follow <paramref name="cursor"/> in order; returns the new cursor.</summary>
    private static async Task<long> WriteAsync(Stream body, StreamEntry[] entries, long cursor, CancellationToken cancellationToken)
    {
        var wrote = false;
        foreach (var entry in entries)
        {
            var sequence = RedisResumeMirror.SequenceOf(entry.Id);
            if (sequence != cursor + 1)
            {
                continue;
            }

            await body.WriteAsync((byte[])entry["e"]!, cancellationToken);
            cursor = sequence;
            wrote = true;
        }

        if (wrote)
        {
            await body.FlushAsync(cancellationToken);
        }

        return cursor;
    }

    private static async Task UnsubscribeAsync(ChannelMessageQueue queue)
    {
        try
        {
            await queue.UnsubscribeAsync();
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            // the connection went away: so did the subscription
        }
    }
}
