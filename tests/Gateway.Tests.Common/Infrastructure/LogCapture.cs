using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Infrastructure;

/// <summary>One log call as a provider saw it: everything a sink could write out.</summary>
internal sealed record CapturedLog(
    string Category,
    LogLevel Level,
    EventId EventId,
    string Message,
    IReadOnlyList<KeyValuePair<string, string?>> State,
    string? Exception,
    IReadOnlyList<string> Scopes)
{
    /// <summary>The message, every structured value and the exception, as one text to search.</summary>
    public string Text => string.Join(" | ", [Message, .. State.Select(p => $"{p.Key}={p.Value}"), Exception ?? ""]);

    public override string ToString() => $"{Level} {Category}[{EventId.Id}{(EventId.Name is null ? "" : ":" + EventId.Name)}] {Text}";
}

/// <summary>
/// A logging provider that keeps every line it is given, with its structured state, exception and
/// scopes, so a test can check what a real sink (console, JSON, OTLP) would have written.
/// Add it with <c>builder.Logging.AddProvider(capture)</c>.
/// </summary>
internal sealed class LogCapture : ILoggerProvider, ISupportExternalScope
{
    private readonly ConcurrentQueue<CapturedLog> _entries = new();
    private IExternalScopeProvider _scopes = new LoggerExternalScopeProvider();
    private TaskCompletionSource _logged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public IReadOnlyList<CapturedLog> Entries => [.. _entries];

    /// <summary>How many warnings (or worse) with <paramref name="eventId"/> were logged.</summary>
    public int WarningCount(int eventId) => _entries.Count(e => e.Level >= LogLevel.Warning && e.EventId.Id == eventId);

    /// <summary>Waits until at least one warning with <paramref name="eventId"/> was logged, then says how many were.</summary>
    public async Task<int> WaitForWarningAsync(int eventId)
    {
        await WaitForAsync(e => e.Level >= LogLevel.Warning && e.EventId.Id == eventId);
        return WarningCount(eventId);
    }

    /// <summary>Waits until at least <paramref name="count"/> entries match <paramref name="predicate"/>; returns those that do.</summary>
    public async Task<IReadOnlyList<CapturedLog>> WaitForAsync(Func<CapturedLog, bool> predicate, int count = 1)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (true)
        {
            var logged = Volatile.Read(ref _logged);
            var matching = _entries.Where(predicate).ToList();
            if (matching.Count >= count)
            {
                return matching;
            }

            await logged.Task.WaitAsync(deadline.Token);
        }
    }

    public ILogger CreateLogger(string categoryName) => new CaptureLogger(this, categoryName);

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => _scopes = scopeProvider;

    public void Dispose()
    {
    }

    private static string? Describe(object? value) => value switch
    {
        null => null,
        IEnumerable<KeyValuePair<string, object?>> pairs => string.Join(", ", pairs.Select(p => $"{p.Key}={Describe(p.Value)}")),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString(),
    };

    private sealed class CaptureLogger(LogCapture owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => owner._scopes.Push(state);

        public bool IsEnabled(LogLevel logLevel) => logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = new List<KeyValuePair<string, string?>>();
            if (state is IEnumerable<KeyValuePair<string, object?>> pairs)
            {
                foreach (var pair in pairs)
                {
                    values.Add(new KeyValuePair<string, string?>(pair.Key, Describe(pair.Value)));
                }
            }

            var scopes = new List<string>();
            owner._scopes.ForEachScope(static (scope, list) => list.Add(Describe(scope) ?? ""), scopes);
            owner._entries.Enqueue(new CapturedLog(category, logLevel, eventId, formatter(state, exception), values, exception?.ToString(), scopes));
            Interlocked.Exchange(ref owner._logged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        }
    }
}
