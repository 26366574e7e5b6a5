using System.Collections.Concurrent;

namespace Gateway.Savings;

/// <summary>What one session's cancellations saved so far (estimates), for a chat page's live counter.</summary>
internal readonly record struct SessionTotals(long TokensSaved, long Cancellations);

/// <summary>
/// Running totals of tokens saved per tenant-scoped session, in memory and bounded: past
/// <see cref="MaxSessions"/> the least recently updated half is forgotten, so any number of distinct
/// keys costs bounded memory.
/// </summary>
internal sealed class SessionSavings
{
    public const int MaxSessions = 10_000;

    private readonly ConcurrentDictionary<string, Entry> _sessions = new(StringComparer.Ordinal);
    private long _clock;

    public void Add(string tenantSession, long tokensSaved)
    {
        var entry = _sessions.GetOrAdd(tenantSession, static _ => new Entry());
        Interlocked.Add(ref entry.TokensSaved, tokensSaved);
        Interlocked.Increment(ref entry.Cancellations);
        Volatile.Write(ref entry.Touched, Interlocked.Increment(ref _clock));
        if (_sessions.Count > MaxSessions)
        {
            Trim();
        }
    }

    public SessionTotals Get(string tenantSession) =>
        _sessions.TryGetValue(tenantSession, out var entry)
            ? new SessionTotals(Volatile.Read(ref entry.TokensSaved), Volatile.Read(ref entry.Cancellations))
            : default;

    public int Count => _sessions.Count;

    private void Trim()
    {
        lock (_sessions)
        {
            if (_sessions.Count <= MaxSessions)
            {
                return;
            }

            var order = _sessions.Select(p => (p.Key, Touched: Volatile.Read(ref p.Value.Touched))).OrderBy(p => p.Touched).ToArray();
            foreach (var (key, _) in order.AsSpan(0, order.Length / 2))
            {
                _sessions.TryRemove(key, out _);
            }
        }
    }

    private sealed class Entry
    {
        public long TokensSaved;
        public long Cancellations;
        public long Touched;
    }
}
