using System.Text;

namespace MockLlm.Recording;

/// <summary>Ground truth of every generation request the mock has served, in start order.</summary>
public sealed class Ledger
{
    private readonly TimeProvider _time;
    private readonly Lock _gate = new();
    private readonly List<LedgerRecord> _records = [];

    // Created only when someone waits and swapped out (and completed) on each change, so a token
    // costs one Interlocked.Exchange when nobody is waiting.
    private TaskCompletionSource? _changed;

    internal Ledger(TimeProvider time) => _time = time;

    /// <summary>Immutable copies of all entries, in start order.</summary>
    public IReadOnlyList<LedgerEntry> Snapshot()
    {
        LedgerEntry[] entries;
        lock (_gate)
        {
            entries = new LedgerEntry[_records.Count];
            for (var i = 0; i < entries.Length; i++)
            {
                entries[i] = _records[i].ToEntry();
            }
        }

        return Array.AsReadOnly(entries);
    }

    /// <summary>Forgets all entries. Requests still running keep going but no longer appear.</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _records.Clear();
        }

        NotifyChanged();
    }

    /// <summary>Completes with the snapshot as soon as <paramref name="predicate"/> holds for it; the
    /// predicate is re-evaluated on every change (entry started, token sent, entry ended).</summary>
    /// <exception cref="TimeoutException">The predicate did not hold within <paramref name="timeout"/>;
    /// the message includes the last snapshot.</exception>
    public async Task<IReadOnlyList<LedgerEntry>> WaitForAsync(Func<IReadOnlyList<LedgerEntry>, bool> predicate, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        using var deadline = new CancellationTokenSource(timeout, _time);
        while (true)
        {
            // Take the signal before the snapshot: a change landing in between completes this signal,
            // so it cannot be missed.
            var changed = GetChangedSignal();
            var snapshot = Snapshot();
            if (predicate(snapshot))
            {
                return snapshot;
            }

            try
            {
                await changed.WaitAsync(deadline.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (deadline.IsCancellationRequested)
            {
                throw new TimeoutException(
                    $"Ledger condition not met within {timeout}. Last snapshot: {Describe(Snapshot())}");
            }
        }
    }

    internal LedgerRecord Start(string path, string? sessionId, string? model, bool stream, int tokensPlanned, bool includeUsage = false)
    {
        var record = new LedgerRecord(
            Guid.NewGuid().ToString("N"), path, sessionId, model, stream, tokensPlanned, _time.GetUtcNow()) { IncludeUsage = includeUsage };
        lock (_gate)
        {
            _records.Add(record);
        }

        NotifyChanged();
        return record;
    }

    internal void TokenSent(LedgerRecord record)
    {
        record.IncrementTokensSent();
        NotifyChanged();
    }

    internal void End(LedgerRecord record, LedgerOutcome outcome)
    {
        lock (_gate)
        {
            if (!record.TryEnd(outcome, _time.GetUtcNow()))
            {
                return;
            }
        }

        NotifyChanged();
    }

    private Task GetChangedSignal()
    {
        var current = Volatile.Read(ref _changed);
        if (current is null)
        {
            var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            current = Interlocked.CompareExchange(ref _changed, created, null) ?? created;
        }

        return current.Task;
    }

    private void NotifyChanged() => Interlocked.Exchange(ref _changed, null)?.TrySetResult();

    private static string Describe(IReadOnlyList<LedgerEntry> entries)
    {
        if (entries.Count == 0)
        {
            return "(empty)";
        }

        var text = new StringBuilder();
        foreach (var entry in entries)
        {
            text.AppendLine().Append("  ").Append(entry);
        }

        return text.ToString();
    }
}
