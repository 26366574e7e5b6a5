using Gateway.Telemetry;
using StackExchange.Redis;

namespace Gateway.Sessions.Redis;

/// <summary>
/// The registry's connection to Redis and whether it is usable: connects in the background, subscribes to
/// the deployment's channel and this replica's ack channel, and marks Redis available only when a probe this
/// replica publishes comes back on its channel (then the leases claimed locally meanwhile are reconciled).
/// While available, every third of the owner TTL it has the owner records of live streams refreshed.
/// </summary>
internal sealed class RedisConnection : IAsyncDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    private readonly RedisRegistryOptions _options;
    private readonly RedisKeys _keys;
    private readonly RedisChannel _ackChannel;
    private readonly RedisAnnouncements _announcements;
    private readonly Func<ConnectionMultiplexer, Task> _refresh;
    private readonly Func<ConnectionMultiplexer, Task> _reconcile;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TimeSpan _connectTimeout;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private ConnectionMultiplexer? _redis;
    private ChannelMessageQueue? _queue;
    private ChannelMessageQueue? _ackQueue;
    private Task _loop = Task.CompletedTask;
    private int _state = -1; // -1 not known yet, 0 unavailable, 1 available
    private TaskCompletionSource _availabilityChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastRefresh;
    private int _disposed;
    private long _startedAt;

    /// <param name="refresh">Extends the owner records of live streams.</param>
    /// <param name="reconcile">Claims in Redis the leases claimed locally while it was away.</param>
    public RedisConnection(RedisRegistryOptions options, RedisKeys keys, string replicaId, RedisAnnouncements announcements,
        Func<ConnectionMultiplexer, Task> refresh, Func<ConnectionMultiplexer, Task> reconcile,
        GatewayMetrics metrics, TimeProvider time, ILogger logger)
    {
        _options = options;
        _keys = keys;
        _ackChannel = keys.AckChannel(replicaId);
        _announcements = announcements;
        _refresh = refresh;
        _reconcile = reconcile;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _connectTimeout = TimeSpan.FromMilliseconds(Math.Max(_options.RedisTimeout.TotalMilliseconds * 4, 1000));
        metrics.RedisAvailability(false);
    }

    /// <summary>True while Redis answers and this replica hears its own channel: cross-replica mode.</summary>
    public bool Available => Volatile.Read(ref _state) == 1;

    /// <summary>The connection once made (it reconnects by itself); use it only while <see cref="Available"/>.</summary>
    public ConnectionMultiplexer? Multiplexer => _redis;

    /// <summary>Completes once <see cref="Available"/> equals <paramref name="available"/> (at once if it does).</summary>
    public async Task WaitForAvailabilityAsync(bool available, CancellationToken cancellationToken)
    {
        while (true)
        {
            // Taken before the look, so a change between the look and the wait is not missed.
            var changed = Volatile.Read(ref _availabilityChanged);
            if (Available == available)
            {
                return;
            }

            await changed.Task.WaitAsync(cancellationToken);
        }
    }

    private void AvailabilityChanged() =>
        Interlocked.Exchange(ref _availabilityChanged, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Starts connecting in the background: a Redis that is down or slow never delays start-up.</summary>
    public void Start()
    {
        _startedAt = _time.GetTimestamp();
        _loop = Task.Run(() => RunAsync(_stopping.Token));
    }

    private async Task RunAsync(CancellationToken stopping)
    {
        while (!stopping.IsCancellationRequested)
        {
            try
            {
                await StepAsync();
            }
            catch (Exception ex) when (IsRedisFailure(ex))
            {
                MarkUnavailable(ex);
            }

            try
            {
                await _wake.WaitAsync(Tick, stopping);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>One round of upkeep: connect and subscribe if not yet, probe while unavailable, refresh
    /// the owner records of live streams every third of their TTL.</summary>
    private async Task StepAsync()
    {
        if (_redis is null)
        {
            var configuration = ConfigurationOptions.Parse(_options.Redis);
            configuration.AbortOnConnectFail = false;
            configuration.BacklogPolicy = BacklogPolicy.FailFast; // a disconnected call fails at once instead of queueing
            configuration.AsyncTimeout = (int)Math.Max(_options.RedisTimeout.TotalMilliseconds, 10);
            configuration.ConnectTimeout = (int)_connectTimeout.TotalMilliseconds;
            configuration.ReconnectRetryPolicy = new LinearRetry(500);
            configuration.ClientName ??= "llm-gateway";
            var redis = await ConnectionMultiplexer.ConnectAsync(configuration);
            redis.ConnectionFailed += (_, e) => MarkUnavailable(e.Exception);
            redis.ConnectionRestored += (_, _) => _wake.Release();
            _redis = redis;
        }

        if (!_redis.IsConnected)
        {
            MarkUnavailable(null);
            return;
        }

        if (_queue is null)
        {
            // Subscriptions are restored by the client after a reconnect; the probe checks they were.
            var queue = await _redis.GetSubscriber().SubscribeAsync(_keys.Channel).WaitAsync(_options.RedisTimeout, _time);
            var redis = _redis;
            queue.OnMessage(message => _announcements.OnMessage(message, redis));
            _queue = queue;
        }

        if (_ackQueue is null)
        {
            var acks = await _redis.GetSubscriber().SubscribeAsync(_ackChannel).WaitAsync(_options.RedisTimeout, _time);
            acks.OnMessage(_announcements.OnAck);
            _ackQueue = acks;
        }

        if (!Available)
        {
            await ProbeAsync(_redis);
            return;
        }

        var now = _time.GetTimestamp();
        if (_time.GetElapsedTime(Interlocked.Read(ref _lastRefresh), now) >= _options.RedisOwnerTtl / 3)
        {
            Interlocked.Exchange(ref _lastRefresh, now);
            await _refresh(_redis);
        }
    }

    /// <summary>Available again only when a message this replica publishes comes back on its channel.</summary>
    private async Task ProbeAsync(ConnectionMultiplexer redis)
    {
        await _announcements.ProbeAsync(redis.GetDatabase());
        Interlocked.Exchange(ref _lastRefresh, _time.GetTimestamp());
        if (Interlocked.Exchange(ref _state, 1) != 1)
        {
            _metrics.RedisAvailability(true);
            RedisRegistryLog.Available(_logger);
            AvailabilityChanged();
            await _reconcile(redis); // a failure here marks Redis away again, and the next probe retries
        }
    }

    public void MarkUnavailable(Exception? ex)
    {
        // While the first connection is still being made, a failure event or a not-yet-connected look is
        // no outage yet; after the connect timeout and one more round, it is (Redis unreachable at start).
        if (Volatile.Read(ref _state) == -1 && _time.GetElapsedTime(_startedAt) < _connectTimeout + Tick)
        {
            return;
        }

        if (Interlocked.Exchange(ref _state, 0) != 0)
        {
            _metrics.RedisAvailability(false);
            RedisRegistryLog.Unavailable(_logger, ex?.GetType().Name ?? "not connected");
            AvailabilityChanged();
        }
    }

    public static bool IsRedisFailure(Exception ex) =>
        ex is RedisException or TimeoutException or ObjectDisposedException or InvalidOperationException;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        await _loop;
        if (_redis is { } redis)
        {
            await redis.DisposeAsync();
        }

        _stopping.Dispose();
        _wake.Dispose();
    }
}
