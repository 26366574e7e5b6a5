using System.Collections.Concurrent;
using System.Text;
using System.Threading.Channels;
using Gateway.Telemetry;
using Gateway.Tokens;
using Microsoft.Extensions.Options;
using Microsoft.ML.Tokenizers;

namespace Gateway.Savings;

/// <summary>
/// Counts the completion text of finished streams with a tiktoken encoding, on one background worker:
/// tokenizing on the request path is what stalled LiteLLM's event loop (#36429). The request hands
/// its text over and returns; a full queue falls back to the chunk count rather than waiting.
/// </summary>
internal sealed partial class TokenizerCounting : BackgroundService
{
    private readonly TokenOptions _options;
    private readonly ILogger<TokenizerCounting> _logger;
    private readonly Channel<(StreamEnd End, Func<StreamEnd, long, object> Finish)>? _queue;
    private readonly ConcurrentDictionary<string, Tokenizer> _encodings = new(StringComparer.Ordinal);

    public TokenizerCounting(IOptions<TokenOptions> options, ILogger<TokenizerCounting> logger)
    {
        _options = options.Value;
        _logger = logger;
        if (_options.Counting == TokenCounting.Tokenizer)
        {
            _queue = Channel.CreateBounded<(StreamEnd, Func<StreamEnd, long, object>)>(
                new BoundedChannelOptions(_options.QueueCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.DropWrite });
        }
    }

    /// <summary>True when streams keep their text for this worker.</summary>
    public bool Enabled => _queue is not null;

    public bool TryQueue<T>(StreamEnd end, Func<StreamEnd, long, T> finish) where T : notnull =>
        _queue is not null && _queue.Writer.TryWrite((end, (e, n) => finish(e, n)));

    /// <summary>Tokens in <paramref name="utf8"/> by the encoding configured for <paramref name="model"/>.</summary>
    public int Count(string model, ReadOnlySpan<byte> utf8) =>
        Encoding(model).CountTokens(System.Text.Encoding.UTF8.GetString(utf8));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_queue is null)
        {
            return;
        }

        try
        {
            await foreach (var (end, finish) in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                long tokens;
                try
                {
                    tokens = end.Counter!.ReportedCompletionTokens ?? Count(end.Model, end.Counter.Text!.Utf8);
                }
                catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or DecoderFallbackException)
                {
                    Log.TokenizerFailed(_logger, end.Route, ex);
                    tokens = end.Counter!.Tokens;
                }

                finish(end, tokens);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private Tokenizer Encoding(string model)
    {
        var name = _options.DefaultEncoding;
        foreach (var (pattern, encoding) in _options.ModelEncodings)
        {
            var matches = pattern.EndsWith('*')
                ? model.StartsWith(pattern.AsSpan(0, pattern.Length - 1), StringComparison.Ordinal)
                : model.Equals(pattern, StringComparison.Ordinal);
            if (matches)
            {
                name = encoding;
                break;
            }
        }

        return _encodings.GetOrAdd(name, static n => TiktokenTokenizer.CreateForEncoding(n));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = EventIds.TokenizerFailed, Level = LogLevel.Warning, Message = "Tokenizer failed for a stream on route {RouteId}; its chunk count is used")]
        public static partial void TokenizerFailed(ILogger logger, string routeId, Exception exception);
    }
}
