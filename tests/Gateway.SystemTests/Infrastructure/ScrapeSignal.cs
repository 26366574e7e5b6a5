using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// Counts the scrapes a real Prometheus completed against a gateway (GET /metrics with Prometheus's
/// User-Agent), as a middleware at the front of the gateway's pipeline, so a test can wait for scrapes
/// instead of asking Prometheus again and again.
/// </summary>
internal sealed class ScrapeSignal : IStartupFilter
{
    private readonly Lock _gate = new();
    private readonly List<(long Count, TaskCompletionSource Reached)> _waiters = [];
    private long _completed;

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(async (context, nextMiddleware) =>
        {
            await nextMiddleware(context);
            if (context.Request.Path == "/metrics"
                && context.Request.Headers.UserAgent.ToString().StartsWith("Prometheus/", StringComparison.Ordinal))
            {
                await context.Response.CompleteAsync();
                Completed();
            }
        });
        next(app);
    };

    /// <summary>
    /// Completes once <paramref name="more"/> further scrapes have finished. Prometheus scrapes a target
    /// one scrape at a time and stores a scrape before it starts the next, so after three more, the
    /// second of them began after this call and its samples are stored.
    /// </summary>
    public Task WaitForMoreAsync(int more)
    {
        lock (_gate)
        {
            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((_completed + more, reached));
            return reached.Task.WaitAsync(Wait.Timeout);
        }
    }

    private void Completed()
    {
        lock (_gate)
        {
            _completed++;
            for (var i = _waiters.Count - 1; i >= 0; i--)
            {
                if (_waiters[i].Count <= _completed)
                {
                    _waiters[i].Reached.TrySetResult();
                    _waiters.RemoveAt(i);
                }
            }
        }
    }
}
