using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Gateway.Telemetry;

/// <summary>The currency the cost instruments count in (pricing registers it from <c>Gateway:Pricing:Currency</c>).</summary>
internal sealed record CostCurrency(string Code)
{
    public const string Default = "USD";
}

/// <summary>What one session stream's end is recorded as.</summary>
internal readonly record struct StreamRecord(
    string Route,
    string Model,
    string Api,
    string Operation,
    StreamOutcome Outcome,
    string? ErrorClass,
    long TokensStreamed,
    long? PromptTokens,
    double? TimeToFirstChunkSeconds,
    long? TokensSaved,
    string? Estimator,
    double? CancelLatencySeconds)
{
    /// <summary>For a cancelled stream of a priced model: what the cancellation saved, in <see cref="Currency"/>.</summary>
    public double? CostSaved { get; init; }

    /// <summary>For a cancelled stream of a priced model: what it still cost (output and known prompt tokens).</summary>
    public double? CostSpent { get; init; }

    public string? Currency { get; init; }
}

/// <summary>
/// The gateway's instruments. GenAI semantic-convention names where one fits
/// (<c>gen_ai.client.token.usage</c>, time to first chunk); the gateway's own under <c>llm_gateway.</c>.
/// Labels are bounded: route id, model label (see <see cref="ModelLabels"/>), outcome, reason, estimator.
/// </summary>
internal sealed class GatewayMetrics
{
    public const string MeterName = "LlmGateway";

    private static readonly long[] TokenBuckets = [1, 4, 16, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536];
    private static readonly double[] LatencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    private static readonly double[] FirstChunkBuckets = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _ended;
    private readonly Counter<long> _streamed;
    private readonly Histogram<long> _saved;
    private readonly Histogram<long> _spent;
    private readonly Histogram<double> _cancelLatency;
    private readonly Histogram<long> _tokenUsage;
    private readonly Histogram<double> _firstChunk;
    private readonly Counter<long> _forwarderRequests;
    private readonly Counter<long> _forwarderFailures;
    private readonly Counter<long> _rejections;
    private readonly Counter<double> _costSaved;
    private readonly Counter<double> _costSpent;
    private readonly Counter<long> _sessionBusy;
    private readonly Counter<long> _debounced;
    private readonly Counter<long> _debouncePromptSaved;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _resumeOutcomes;
    private readonly UpDownCounter<long> _detached;
    private readonly Counter<long> _undelivered;
    private int _redisAvailable = -1; // -1: no Redis registry configured, so no series

    public GatewayMetrics(IMeterFactory meterFactory, CostCurrency? currency = null)
    {
        // The unit is the currency in braces, as UCUM annotates a count ("{USD}"); Prometheus drops it
        // from the name, and the currency label says it again for queries.
        var currencyUnit = "{" + (currency?.Code ?? CostCurrency.Default) + "}";
        var meter = meterFactory.Create(MeterName);
        _active = meter.CreateUpDownCounter<long>("llm_gateway.streams.active", "{stream}",
            "Session streams being proxied now.");
        _ended = meter.CreateCounter<long>("llm_gateway.streams.ended", "{stream}",
            "Session streams that ended, by outcome.");
        _streamed = meter.CreateCounter<long>("llm_gateway.tokens.streamed", "{token}",
            "Completion tokens that reached the gateway, including those of streams cancelled later.");
        _saved = meter.CreateHistogram("llm_gateway.cancellation.tokens_saved", "{token}",
            "Estimated completion tokens the backend did not generate because the stream was cancelled.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = TokenBuckets });
        _spent = meter.CreateHistogram("llm_gateway.cancellation.tokens_spent", "{token}",
            "Completion tokens generated before a cancellation.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = TokenBuckets });
        _cancelLatency = meter.CreateHistogram("llm_gateway.cancellation.latency", "s",
            "From the cancel decision to the upstream request being aborted.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets });
        _tokenUsage = meter.CreateHistogram("gen_ai.client.token.usage", "{token}",
            "Tokens per request (GenAI semantic conventions).",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = TokenBuckets });
        _firstChunk = meter.CreateHistogram("gen_ai.client.operation.time_to_first_chunk", "s",
            "From the request to its first response chunk (GenAI semantic conventions).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = FirstChunkBuckets });
        _forwarderRequests = meter.CreateCounter<long>("yarp.forwarder.requests", "{request}",
            "Requests YARP forwarded, by status code.");
        _forwarderFailures = meter.CreateCounter<long>("yarp.forwarder.failures", "{request}",
            "Requests YARP failed to forward, by forwarder error.");
        _rejections = meter.CreateCounter<long>("llm_gateway.rate_limit.rejections", "{request}",
            "Requests refused by the per-tenant limits, by limit (rate or concurrency).");
        _costSaved = meter.CreateCounter<double>("llm_gateway.cancellation.cost_saved", currencyUnit,
            "Estimated cost of the completion tokens cancellations saved (tokens saved x output price), for priced models.");
        _costSpent = meter.CreateCounter<double>("llm_gateway.cancellation.cost_spent", currencyUnit,
            "Cost of cancelled streams before their cancellation (tokens spent x output price + reported prompt tokens x input price), for priced models.");
        _sessionBusy = meter.CreateCounter<long>("llm_gateway.sessions.busy_rejections", "{request}",
            "Requests refused with 409 session_busy because a stream of their session key was active (SessionStreams.OnNewer: reject).");
        _debounced = meter.CreateCounter<long>("llm_gateway.debounce.requests", "{request}",
            "Requests replaced inside their debounce window by a newer one with the same session key; never sent upstream.");
        _debouncePromptSaved = meter.CreateCounter<long>("llm_gateway.debounce.prompt_tokens_saved", "{token}",
            "Estimated prompt tokens (request body bytes / 4) the model server did not process because a request was debounced.");
        _retries = meter.CreateCounter<long>("llm_gateway.upstream.retries", "{attempt}",
            "Attempts that failed before any response byte and were made again on another destination, by route, cluster and reason (connect, connect_timeout, dns, tls, reset).");
        _resumeOutcomes = meter.CreateCounter<long>("llm_gateway.resume.outcomes", "{event}",
            "On resumable routes: resumes (resumed, finished, unavailable, rejected) and detached streams' ends (expired, overflow).");
        _detached = meter.CreateUpDownCounter<long>("llm_gateway.resume.detached", "{stream}",
            "Resumable streams generating now with no client reading them.");
        _undelivered = meter.CreateCounter<long>("llm_gateway.resume.tokens_undelivered", "{token}",
            "Tokens generated on resumable streams that no client was sent: spent, not saved.");
        meter.CreateObservableGauge("llm_gateway.redis.available", ObserveRedis, "{state}",
            "1 while the Redis session registry answers (supersede reaches every replica), 0 while this replica is local-only. Absent without Redis.");
    }

    /// <summary>Sets the Redis availability gauge (configured, so from now on it is exported).</summary>
    public void RedisAvailability(bool available) => Volatile.Write(ref _redisAvailable, available ? 1 : 0);

    private IEnumerable<Measurement<int>> ObserveRedis()
    {
        var value = Volatile.Read(ref _redisAvailable);
        return value < 0 ? [] : [new Measurement<int>(value)];
    }

    public void StreamStarted(string route, string model, string api) =>
        _active.Add(1, new TagList { { "route", route }, { "model", model }, { "api", api } });

    /// <summary>The other half of <see cref="StreamStarted"/>, with the same labels.</summary>
    public void StreamStopped(string route, string model, string api) =>
        _active.Add(-1, new TagList { { "route", route }, { "model", model }, { "api", api } });

    /// <summary>Records a stream's end. Takes no cancellation token on purpose: a cancelled
    /// stream's figures are the ones that matter most.</summary>
    public void StreamEnded(in StreamRecord r)
    {
        var ended = new TagList { { "route", r.Route }, { "model", r.Model }, { "api", r.Api }, { "outcome", r.Outcome.ToLabel() } };
        if (r.ErrorClass is { } errorClass)
        {
            ended.Add("status_class", errorClass);
        }

        _streamed.Add(r.TokensStreamed, new TagList { { "route", r.Route }, { "model", r.Model }, { "api", r.Api } });

        var output = new TagList
        {
            { "gen_ai.token.type", "output" },
            { "gen_ai.request.model", r.Model },
            { "gen_ai.operation.name", r.Operation },
        };
        _tokenUsage.Record(r.TokensStreamed, output);
        if (r.PromptTokens is { } prompt)
        {
            var input = new TagList
            {
                { "gen_ai.token.type", "input" },
                { "gen_ai.request.model", r.Model },
                { "gen_ai.operation.name", r.Operation },
            };
            _tokenUsage.Record(prompt, input);
        }

        if (r.TimeToFirstChunkSeconds is { } firstChunk)
        {
            _firstChunk.Record(firstChunk, new TagList { { "gen_ai.request.model", r.Model }, { "gen_ai.operation.name", r.Operation } });
        }

        if (r.Outcome.IsCancellation())
        {
            var reason = r.Outcome.ToLabel();
            _spent.Record(r.TokensStreamed, new TagList { { "route", r.Route }, { "model", r.Model }, { "api", r.Api }, { "reason", reason } });
            if (r.TokensSaved is { } saved)
            {
                _saved.Record(saved, new TagList
                {
                    { "route", r.Route }, { "model", r.Model }, { "api", r.Api }, { "reason", reason }, { "estimator", r.Estimator },
                });
            }

            if (r.CostSaved is { } costSaved && r.CostSpent is { } costSpent)
            {
                var cost = new TagList { { "route", r.Route }, { "model", r.Model }, { "api", r.Api }, { "currency", r.Currency } };
                _costSaved.Add(costSaved, cost);
                _costSpent.Add(costSpent, cost);
            }

            if (r.CancelLatencySeconds is { } latency)
            {
                _cancelLatency.Record(latency, new TagList { { "route", r.Route }, { "reason", reason } });
            }
        }

        // Last: whoever waits for a stream's end (a test's listener, a dashboard's rate) then sees all its figures.
        _ended.Add(1, ended);
    }

    public void RateLimited(string route, string model, string api, string limit)
    {
        _rejections.Add(1, new TagList { { "route", route }, { "limit", limit } });
        _ended.Add(1, new TagList { { "route", route }, { "model", model }, { "api", api }, { "outcome", StreamOutcome.RateLimited.ToLabel() } });
    }

    /// <summary>A request refused because its session was busy (OnNewer: reject); also a stream end with outcome <c>session_busy</c>.</summary>
    public void SessionBusy(string route, string model, string api)
    {
        _sessionBusy.Add(1, new TagList { { "route", route }, { "model", model }, { "api", api } });
        _ended.Add(1, new TagList { { "route", route }, { "model", model }, { "api", api }, { "outcome", StreamOutcome.SessionBusy.ToLabel() } });
    }

    /// <summary>A request refused as malformed before it went upstream: a stream end with outcome <c>rejected</c>.</summary>
    public void Rejected(string route, string model, string api) =>
        _ended.Add(1, new TagList { { "route", route }, { "model", model }, { "api", api }, { "outcome", StreamOutcome.Rejected.ToLabel() } });

    /// <summary>A request replaced in its debounce window, with the prompt tokens its model server did not process.</summary>
    public void Debounced(string route, string model, string api, long promptTokens)
    {
        var tags = new TagList { { "route", route }, { "model", model }, { "api", api } };
        _debounced.Add(1, tags);
        _debouncePromptSaved.Add(promptTokens, tags);
    }

    /// <summary>An attempt on <paramref name="cluster"/> failed with <paramref name="reason"/> and is made again elsewhere.</summary>
    public void UpstreamRetried(string route, string cluster, string reason) =>
        _retries.Add(1, new TagList { { "route", route }, { "cluster", cluster }, { "reason", reason } });

    /// <summary>A resume or a detached stream's end on a resumable route (<c>Resume/ResumeOutcomes</c>).</summary>
    public void ResumeOutcome(string route, string outcome) =>
        _resumeOutcomes.Add(1, new TagList { { "route", route }, { "outcome", outcome } });

    /// <summary>A resumable stream detached (+1) or was read, ended or abandoned again (-1).</summary>
    public void Detached(string route, int delta) => _detached.Add(delta, new TagList { { "route", route } });

    /// <summary>Tokens a resumable stream generated that no client was sent, counted when its events are forgotten.</summary>
    public void TokensUndelivered(string route, string model, long tokens) =>
        _undelivered.Add(tokens, new TagList { { "route", route }, { "model", model } });

    public void ForwarderStopped(int statusCode) =>
        _forwarderRequests.Add(1, new TagList { { "http.response.status_code", statusCode } });

    public void ForwarderFailed(string error) =>
        _forwarderFailures.Add(1, new TagList { { "error.type", error } });
}
