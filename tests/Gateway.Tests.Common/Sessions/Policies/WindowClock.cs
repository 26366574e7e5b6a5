using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions.Policies;

/// <summary>
/// The system clock, except for timers of exactly one duration (a route's debounce window): those are made
/// when a request starts its window, which the test can wait for (<see cref="WaitHeldAsync"/>), and they fire
/// only when the test opens them (<see cref="OpenAll"/>). So "inside the window" needs no race against a real
/// clock, and "after the window" no sleep. Every other timer (Redis timeouts, the drain) is the system's.
/// </summary>
internal sealed class WindowClock(TimeSpan window) : TimeProvider
{
    private readonly Lock _gate = new();
    private readonly List<WindowTimer> _timers = [];
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TimeSpan Window => window;

    /// <summary>Windows started so far (a request held, whatever became of it since).</summary>
    public int Started
    {
        get
        {
            lock (_gate)
            {
                return _timers.Count;
            }
        }
    }

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        if (dueTime != window)
        {
            return System.CreateTimer(callback, state, dueTime, period);
        }

        var timer = new WindowTimer(callback, state);
        lock (_gate)
        {
            _timers.Add(timer);
        }

        Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();
        return timer;
    }

    /// <summary>Waits until <paramref name="count"/> windows have started in all.</summary>
    public async Task WaitHeldAsync(int count)
    {
        using var deadline = new CancellationTokenSource(Wait.Timeout);
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (Started >= count)
            {
                return;
            }

            await changed.WaitAsync(deadline.Token);
        }
    }

    /// <summary>Ends every window started so far (those whose request was cancelled meanwhile do nothing).</summary>
    public void OpenAll()
    {
        WindowTimer[] timers;
        lock (_gate)
        {
            timers = [.. _timers];
        }

        foreach (var timer in timers)
        {
            timer.Fire();
        }
    }

    private sealed class WindowTimer(TimerCallback callback, object? state) : ITimer
    {
        private int _done;

        public void Fire()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                callback(state);
            }
        }

        public bool Change(TimeSpan dueTime, TimeSpan period) => Volatile.Read(ref _done) == 0;

        public void Dispose() => Interlocked.Exchange(ref _done, 1);

        public ValueTask DisposeAsync()
        {
            Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
