using System.Collections.Concurrent;
using Gateway.Protocols;
using Gateway.Sessions;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;

namespace Gateway.Resume;

/// <summary>
/// This replica's resumable streams by session key (route, credential hash, session id: a resume finds only its
/// own tenant's stream), and the bounds that hold across them: detached streams per tenant, and bytes kept for all
/// detached streams. A key has one log, its newest stream's; a finished one is kept for its route's window.
/// </summary>
internal sealed class ResumeStore(IOptions<ResumeOptions> options, RedisResumeMirror mirror, GatewayMetrics metrics, TimeProvider time)
{
    private readonly ConcurrentDictionary<string, ResumeLog> _logs = new();
    private readonly Dictionary<string, int> _detachedPerTenant = [];
    private long _detachedBytes;

    public TimeProvider Time => time;

    /// <summary>The copy of every log in Redis, when the deployment shares sessions there; null without Redis.</summary>
    public RedisResumeMirror? Mirror { get; } = mirror.Enabled ? mirror : null;

    /// <summary>Logs kept now (live, detached or finished in their window).</summary>
    public int Count => _logs.Count;

    /// <summary>Bytes kept now for detached streams and for finished ones in their window.</summary>
    public long DetachedBytes => Interlocked.Read(ref _detachedBytes);

    /// <summary>A new stream of <paramref name="key"/>: its log replaces the key's last one.</summary>
    public ResumeLog Open(SessionKey key, string routeId, TimeSpan window, ApiAdapter adapter, Func<long> tokens, Func<string> model)
    {
        var log = new ResumeLog(this, key, routeId, window, adapter, options.Value.MaxStreamBytes, tokens, model);
        _logs.AddOrUpdate(key.Value, log, (_, _) => log);
        return log;
    }

    /// <summary>The key's stream; null when it has none kept. Only the same route, credential and session id find it.</summary>
    public ResumeLog? Find(SessionKey key) => _logs.TryGetValue(key.Value, out var log) ? log : null;

    public void Forget(ResumeLog log)
    {
        if (!log.MarkForgotten())
        {
            return;
        }

        _logs.TryRemove(new KeyValuePair<string, ResumeLog>(log.Key.Value, log));
        Interlocked.Add(ref _detachedBytes, -log.KeptFinishedBytes);
        if (Mirror is { } shared)
        {
            _ = CountUndeliveredAsync(log, shared);
            return;
        }

        CountUndelivered(log);
    }

    /// <summary>With Redis, a reader on another replica may have delivered what this one did not.</summary>
    private async Task CountUndeliveredAsync(ResumeLog log, RedisResumeMirror shared)
    {
        log.Delivered(await shared.DeliveredElsewhereAsync(log));
        CountUndelivered(log);
    }

    private void CountUndelivered(ResumeLog log)
    {
        if (log.UndeliveredTokens() is var undelivered and > 0)
        {
            metrics.TokensUndelivered(log.RouteId, log.Model(), undelivered);
        }
    }

    /// <summary>Counts a stream as detached, with its bytes; false when its tenant has as many detached as it may.</summary>
    public bool TryDetach(ResumeLog log, long bytes)
    {
        lock (_detachedPerTenant)
        {
            var tenant = log.Tenant;
            var count = _detachedPerTenant.GetValueOrDefault(tenant);
            if (count >= options.Value.MaxDetachedPerTenant)
            {
                return false;
            }

            _detachedPerTenant[tenant] = count + 1;
        }

        Interlocked.Add(ref _detachedBytes, bytes);
        metrics.Detached(log.RouteId, +1);
        return true;
    }

    public void Undetach(ResumeLog log, long bytes)
    {
        lock (_detachedPerTenant)
        {
            var tenant = log.Tenant;
            var count = _detachedPerTenant.GetValueOrDefault(tenant) - 1;
            if (count <= 0)
            {
                _detachedPerTenant.Remove(tenant);
            }
            else
            {
                _detachedPerTenant[tenant] = count;
            }
        }

        Interlocked.Add(ref _detachedBytes, -bytes);
        metrics.Detached(log.RouteId, -1);
    }

    /// <summary>A finished stream is kept for its window, its bytes counted in <see cref="ResumeOptions.MaxDetachedBytes"/>
    /// with the detached streams'; false (forgotten at once) when that bound has no room for it.</summary>
    public bool TryKeepFinished(ResumeLog log, long bytes)
    {
        if (Interlocked.Add(ref _detachedBytes, bytes) <= options.Value.MaxDetachedBytes)
        {
            return true;
        }

        Interlocked.Add(ref _detachedBytes, -bytes);
        return false;
    }

    public void DetachedBytesChanged(long delta) => Interlocked.Add(ref _detachedBytes, delta);

    public bool DetachedBytesWithinBound() => Interlocked.Read(ref _detachedBytes) <= options.Value.MaxDetachedBytes;

    public void Expired(ResumeLog log) => metrics.ResumeOutcome(log.RouteId, ResumeOutcomes.Expired);

    public void Overflowed(ResumeLog log) => metrics.ResumeOutcome(log.RouteId, ResumeOutcomes.Overflow);
}

/// <summary>The <c>outcome</c> label of <c>llm_gateway.resume.outcomes</c>.</summary>
internal static class ResumeOutcomes
{
    /// <summary>A resume was served the events after its id, then the live stream.</summary>
    public const string Resumed = "resumed";
    /// <summary>A reconnect after the whole answer was delivered: 204, nothing to send.</summary>
    public const string Finished = "finished";
    /// <summary>A resume that could not be served (unknown, expired, superseded, another tenant's): 204 or 409.</summary>
    public const string Unavailable = "unavailable";
    /// <summary>A resume with a malformed <c>Last-Event-ID</c>: 400.</summary>
    public const string Rejected = "rejected";
    /// <summary>A detached stream nobody resumed within its window: aborted.</summary>
    public const string Expired = "expired";
    /// <summary>A detached stream past a bound: aborted at once.</summary>
    public const string Overflow = "overflow";
}
