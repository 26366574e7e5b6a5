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
    private int _count;

    public void Add(string tenantSession, long tokensSaved)
    {
        var full = false;
        if (!_sessions.TryGetValue(tenantSession, out var entry))
        {
            // Stamped before it is published, so a trim running meanwhile never takes it for the oldest.
            var fresh = new Entry { Touched = Volatile.Read(ref _clock) + 1 };
            entry = _sessions.GetOrAdd(tenantSession, fresh);
            full = ReferenceEquals(entry, fresh) && Interlocked.Increment(ref _count) > MaxSessions;
        }

        Interlocked.Add(ref entry.TokensSaved, tokensSaved);
        Interlocked.Increment(ref entry.Cancellations);
        Volatile.Write(ref entry.Touched, Interlocked.Increment(ref _clock));
        if (full)
        {
            Trim();
        }
    }

    public SessionTotals Get(string tenantSession) =>
        _sessions.TryGetValue(tenantSession, out var entry)
            ? new SessionTotals(Volatile.Read(ref entry.TokensSaved), Volatile.Read(ref entry.Cancellations))
            : default;

    /// <summary>Sessions kept. Counted here: ConcurrentDictionary.Count takes every one of its locks,
    /// which a burst of cancellations (each one an Add) turned into a queue.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Forgets every session not updated in the last <see cref="MaxSessions"/>/2 updates: one pass,
    /// no sort, no allocation. Each update touches one session, so at most that many remain. One thread
    /// trims; others carry on (a burst of cancellations must not queue behind it).</summary>
    private void Trim()
    {
        if (!Monitor.TryEnter(_sessions))
        {
            return;
        }

        try
        {
            var oldest = Volatile.Read(ref _clock) - MaxSessions / 2;
            foreach (var (key, entry) in _sessions)
            {
                if (Volatile.Read(ref entry.Touched) <= oldest && _sessions.TryRemove(key, out _))
                {
                    Interlocked.Decrement(ref _count);
                }
            }
        }
        finally
        {
            Monitor.Exit(_sessions);
        }
    }

    private sealed class Entry
    {
        public long TokensSaved;
        public long Cancellations;
        public long Touched;
    }
}
