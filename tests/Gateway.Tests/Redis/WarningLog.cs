using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Redis;

/// <summary>Keeps the event ids of the warnings one gateway logged, so a test can count them.</summary>
internal sealed class WarningLog : ILoggerProvider
{
    private readonly ConcurrentQueue<(string Category, int EventId)> _warnings = new();
    private TaskCompletionSource _logged = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Count(int eventId) => _warnings.Count(w => w.EventId == eventId);

    /// <summary>Waits until at least one warning with <paramref name="eventId"/> was logged, then says how many were.</summary>
    public async Task<int> WaitForAsync(int eventId)
    {
        using var deadline = new CancellationTokenSource(Gateway.Tests.Infrastructure.Wait.Timeout);
        while (true)
        {
            var logged = Volatile.Read(ref _logged);
            if (Count(eventId) > 0)
            {
                break;
            }

            await logged.Task.WaitAsync(deadline.Token);
        }

        return Count(eventId);
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

    public void Dispose()
    {
    }

    private sealed class Logger(WarningLog owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning)
            {
                owner._warnings.Enqueue((category, eventId.Id));
                Interlocked.Exchange(ref owner._logged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
            }
        }
    }
}
