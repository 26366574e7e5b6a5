using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Redis;

/// <summary>Keeps the event ids of the warnings one gateway logged, so a test can count them.</summary>
internal sealed class WarningLog : ILoggerProvider
{
    private readonly ConcurrentQueue<(string Category, int EventId)> _warnings = new();

    public int Count(int eventId) => _warnings.Count(w => w.EventId == eventId);

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
            }
        }
    }
}
