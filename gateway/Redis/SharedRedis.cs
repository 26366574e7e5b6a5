using System.Globalization;
using System.Security.Cryptography;
using Gateway.Telemetry;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Gateway.Redis;

/// <summary>
/// The one connection to the Redis every replica shares (<c>Gateway:Sessions:Redis</c>: one instance or a cluster),
/// and whether it is usable. The session registry, token budgets, affinity and resumable streams take it by injection.
/// <list type="bullet">
/// <item>It connects in the background (a Redis that is down or slow never delays start-up) and subscribes to this
/// replica's own sharded channel <c>{prefix}:replica:{id}</c> (<c>SSUBSCRIBE</c>): what other replicas send to this one
/// only (a claim that superseded a stream here, a stop, an acknowledgement), never a deployment-wide broadcast.</item>
/// <item>It is <see cref="Available"/> only once a probe published on that channel came back on it: the connection
/// answers and the subscription works, on whichever node of a cluster serves the channel's slot.</item>
/// <item>Every second it runs the upkeep rounds of the features that registered one (<see cref="AddUpkeep"/>); when it
/// becomes available again, their reconciling step first.</item>
/// </list>
/// With no connection string it is not <see cref="Enabled"/>: nothing connects, and <see cref="Database"/> stays null.
/// </summary>
internal sealed class SharedRedis : IAsyncDisposable
{
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    private readonly RedisOptions _options;
    private readonly GatewayMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<SharedRedis> _logger;
    private readonly TimeSpan _connectTimeout;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Upkeep> _upkeeps = [];
    private Action<string>? _listener;
    private ConnectionMultiplexer? _redis;
    private ChannelMessageQueue? _queue;
    private Task _loop = Task.CompletedTask;
    private int _state = -1; // -1 not known yet, 0 unavailable, 1 available
    private TaskCompletionSource _availabilityChanged = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource<long>? _probe;
    private long _probeNonce;
    private long _received;
    private int _restored;
    private int _disposed;
    private long _startedAt;

    public SharedRedis(IOptions<RedisOptions> options, GatewayMetrics metrics, TimeProvider time, ILogger<SharedRedis> logger)
    {
        _options = options.Value;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _connectTimeout = TimeSpan.FromMilliseconds(Math.Max(_options.RedisTimeout.TotalMilliseconds * 4, 1000));
        OwnChannel = ReplicaChannel(ReplicaId);
        if (Enabled)
        {
            metrics.RedisAvailability(false); // configured: the gauge is exported from now on
        }
    }

    /// <summary>True when a connection string is set: this deployment shares state through Redis.</summary>
    public bool Enabled => _options.Enabled;

    /// <summary>This process's id in owner records and channel names (random per start).</summary>
    public string ReplicaId { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>The prefix every key and channel of this deployment starts with (<c>Gateway:Sessions:RedisPrefix</c>).</summary>
    public string KeyPrefix => _options.RedisPrefix;

    /// <summary>The longest any Redis call may take (<c>Gateway:Sessions:RedisTimeout</c>).</summary>
    public TimeSpan Timeout => _options.RedisTimeout;

    /// <summary>True while Redis answers and this replica hears its own channel.</summary>
    public bool Available => Volatile.Read(ref _state) == 1;

    /// <summary>The database while <see cref="Available"/>; null while this replica is local-only.</summary>
    public IDatabase? Database => Available ? _redis?.GetDatabase() : null;

    /// <summary>Messages this replica received from the others on its channel (its own probes not counted).</summary>
    public long MessagesReceived => Interlocked.Read(ref _received);

    /// <summary>This replica's channel.</summary>
    public RedisChannel OwnChannel { get; }

    /// <summary>The sharded channel of <paramref name="replica"/>: its id is the hash tag, so a cluster serves each
    /// replica's channel from one node, and a message on it reaches that replica only.</summary>
    public RedisChannel ReplicaChannel(string replica) => RedisChannel.Sharded($"{KeyPrefix}:replica:{{{replica}}}");

    /// <summary>Sets the one reader of this replica's channel (the session registry). Messages reach it in order.</summary>
    public void Listen(Action<string> listener) => _listener = listener;

    /// <summary>
    /// Adds a feature's upkeep: <paramref name="reconcile"/> runs each time Redis becomes available again (a failure
    /// marks it away again, and the next probe retries); <paramref name="round"/> every second while available, told
    /// whether the connection was restored since its last round (messages may have been lost meanwhile).
    /// </summary>
    public void AddUpkeep(Func<IDatabase, Task>? reconcile, Func<IDatabase, bool, Task>? round)
    {
        lock (_upkeeps)
        {
            _upkeeps.Add(new Upkeep(reconcile, round));
        }
    }

    /// <summary>Sends <paramref name="message"/> to <paramref name="replica"/>'s channel, fire and forget: nothing waits
    /// on it, and a message lost on the way is found by the receiver's upkeep.</summary>
    public void Send(IDatabase db, string replica, string message) =>
        db.Publish(ReplicaChannel(replica), message, CommandFlags.FireAndForget);

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

    /// <summary>Starts connecting in the background when <see cref="Enabled"/>; never waits for Redis.</summary>
    public void Start()
    {
        if (!Enabled || _disposed != 0)
        {
            return;
        }

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
            catch (Exception ex) when (IsFailure(ex))
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

    /// <summary>One round: connect and subscribe if not yet, probe while unavailable, else the features' rounds.</summary>
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
            redis.ConnectionRestored += (_, _) =>
            {
                Volatile.Write(ref _restored, 1);
                _wake.Release();
            };
            _redis = redis;
        }

        if (!_redis.IsConnected)
        {
            MarkUnavailable(null);
            return;
        }

        if (_queue is null)
        {
            // Restored by the client after a reconnect; the probe checks it was (and subscribes again if not).
            var queue = await _redis.GetSubscriber().SubscribeAsync(OwnChannel).WaitAsync(_options.RedisTimeout, _time);
            queue.OnMessage(OnMessage);
            _queue = queue;
        }

        var db = _redis.GetDatabase();
        if (!Available)
        {
            await ProbeAsync(db);
            return;
        }

        var restored = Interlocked.Exchange(ref _restored, 0) == 1;
        foreach (var upkeep in Upkeeps())
        {
            if (upkeep.Round is { } round)
            {
                await round(db, restored);
            }
        }
    }

    private Upkeep[] Upkeeps()
    {
        lock (_upkeeps)
        {
            return [.. _upkeeps];
        }
    }

    /// <summary>Available again only when a message this replica publishes comes back on its channel.</summary>
    private async Task ProbeAsync(IDatabase db)
    {
        var nonce = Interlocked.Increment(ref _probeNonce);
        var probe = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _probe, probe);
        try
        {
            await db.PublishAsync(OwnChannel, $"p {nonce.ToString(CultureInfo.InvariantCulture)}").WaitAsync(_options.RedisTimeout, _time);
            while (await probe.Task.WaitAsync(_options.RedisTimeout, _time) != nonce)
            {
                probe = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
                Volatile.Write(ref _probe, probe);
            }
        }
        catch (TimeoutException) when (_queue is { } queue)
        {
            // Not heard: the subscription may be on a node that is gone (a cluster failover moved the channel's slot).
            // Subscribe afresh next round; the client routes it to the slot's current owner.
            _queue = null;
            _ = queue.UnsubscribeAsync(CommandFlags.FireAndForget);
            throw;
        }

        Volatile.Write(ref _restored, 0);
        if (Interlocked.Exchange(ref _state, 1) != 1)
        {
            _metrics.RedisAvailability(true);
            SharedRedisLog.Available(_logger);
            AvailabilityChanged();
            foreach (var upkeep in Upkeeps())
            {
                if (upkeep.Reconcile is { } reconcile)
                {
                    await reconcile(db);
                }
            }
        }
    }

    private void OnMessage(ChannelMessage message)
    {
        var text = (string?)message.Message;
        if (text is null || text.Length < 2)
        {
            return;
        }

        if (text[0] == 'p' && text[1] == ' ')
        {
            if (long.TryParse(text.AsSpan(2), CultureInfo.InvariantCulture, out var nonce))
            {
                Volatile.Read(ref _probe)?.TrySetResult(nonce);
            }

            return;
        }

        Interlocked.Increment(ref _received);
        _listener?.Invoke(text);
    }

    /// <summary>Marks Redis away after a failed call: features fall back to this replica's view until a probe answers.</summary>
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
            SharedRedisLog.Unavailable(_logger, ex?.GetType().Name ?? "not connected");
            AvailabilityChanged();
        }
    }

    /// <summary>What a failed Redis call throws (not answered, disconnected, shut down).</summary>
    public static bool IsFailure(Exception ex) =>
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

    private sealed record Upkeep(Func<IDatabase, Task>? Reconcile, Func<IDatabase, bool, Task>? Round);
}

internal static partial class SharedRedisLog
{
    [LoggerMessage(EventId = EventIds.RedisUnavailable, Level = LogLevel.Warning,
        Message = "Redis unavailable ({Reason}); supersede, stop, budgets and resume are local to this replica until it answers again")]
    public static partial void Unavailable(ILogger logger, string reason);

    [LoggerMessage(EventId = EventIds.RedisAvailable, Level = LogLevel.Information, Message = "Redis available; supersede and stop reach every replica")]
    public static partial void Available(ILogger logger);
}
