using MockLlm;

namespace Gateway.Tests.Infrastructure;

internal static class Wait
{
    /// <summary>The longest any test waits for a signal; generous, since CI machines are shared.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <summary>Waits until <paramref name="ledger"/> has its <paramref name="index"/>th entry for
    /// <paramref name="sessionId"/> and that entry matches <paramref name="predicate"/>.</summary>
    public static async Task<LedgerEntry> ForEntryAsync(Ledger ledger, string? sessionId, Func<LedgerEntry, bool> predicate, int index = 0)
    {
        var entries = await ledger.WaitForAsync(
            all => all.Where(e => e.SessionId == sessionId).Skip(index).Take(1).Any(predicate),
            Timeout);
        return entries.Where(e => e.SessionId == sessionId).Skip(index).First();
    }
}
