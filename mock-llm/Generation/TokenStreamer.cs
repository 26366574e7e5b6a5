using System.IO.Pipelines;
using System.Text.Json;
using Microsoft.Extensions.Options;
using MockLlm.Errors;
using MockLlm.Recording;

namespace MockLlm.Generation;

/// <summary>The generation loop shared by every protocol: plans the length, paces tokens on an absolute
/// schedule (caught up after a stall at four times the pace, not in one burst: <see cref="CatchUpSpeed"/>),
/// notices the client leaving, injects faults and keeps the ledger.</summary>
internal sealed class TokenStreamer(
    IOptions<MockLlmOptions> options,
    Ledger ledger,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<TokenStreamer> logger)
{
    public const string SessionIdHeader = "X-Session-Id";
    public const string RequestIdHeader = "X-Mock-Request-Id";

    /// <summary>Reads and validates a JSON body, then generates.</summary>
    /// <param name="errorShape">How a refused body or header is reported: the imitated API's own error shape.</param>
    public async Task HandleAsync(
        HttpContext context,
        Func<JsonElement, GenerationRequest> parse,
        Func<GenerationContext, ChunkWriter> createWriter,
        ErrorShape errorShape = ErrorShape.OpenAi)
    {
        var body = await RequestBodyReader.ReadAsync(context, parse);
        if (body.Request is null)
        {
            if (body.Error is not null)
            {
                await RejectAsync(context, body.StatusCode, body.Error, errorShape);
            }

            return;
        }

        await GenerateAsync(context, body.Request, createWriter, errorShape);
    }

    public async Task GenerateAsync(
        HttpContext context,
        GenerationRequest request,
        Func<GenerationContext, ChunkWriter> createWriter,
        ErrorShape errorShape = ErrorShape.OpenAi)
    {
        var settings = options.Value;
        if (!GenerationOverrides.TryRead(context.Request.Headers, settings, out var overrides, out var headerError))
        {
            await RejectAsync(context, StatusCodes.Status400BadRequest, headerError!, errorShape);
            return;
        }

        var cap = request.MaxTokens is > 0 ? request.MaxTokens.Value : int.MaxValue;
        var stoppedByCap = cap < overrides.CompletionTokens;
        var planned = stoppedByCap ? cap : overrides.CompletionTokens;
        var path = context.Request.Path.Value ?? string.Empty;
        var sessionId = context.Request.Headers.TryGetValue(SessionIdHeader, out var session) ? session.ToString() : null;

        var record = ledger.Start(path, sessionId, request.Model, request.Stream, planned, request.IncludeUsage);
        GenerationLog.Started(logger, record.Id, path, planned);

        var script = TokenScript.ForPrompt(request.Prompt);
        var generation = new GenerationContext(
            overrides.Clock is { } pinned ? script.PinnedId(pinned) : record.Id,
            request.Model ?? settings.Models[0],
            overrides.Clock ?? record.StartedAt,
            request,
            script,
            planned,
            stoppedByCap,
            overrides.Clock is { } clock ? new PinnedClock(clock) : time);
        var writer = createWriter(generation);

        var response = context.Response;
        response.ContentType = writer.ContentType;
        response.Headers[RequestIdHeader] = record.Id;
        if (writer.Streams)
        {
            response.Headers.CacheControl = "no-cache";
        }

        // Shutdown ends generations too, so stopping the host never waits on a long stream.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, lifetime.ApplicationStopping);
        var cancellationToken = stop.Token;
        var output = response.BodyWriter;
        var outcome = LedgerOutcome.Cancelled;
        var startTimestamp = time.GetTimestamp();
        var firstTokenTimestamp = startTimestamp;
        var intervalMs = 1000.0 / overrides.TokensPerSecond;

        // A withheld end (fail-after) sends the last token as an ordinary one.
        var endsOnLastToken = writer.EndsOnLastToken && planned > 0 && planned != overrides.FailAfter;
        try
        {
            if (overrides.EarlyHeaders)
            {
                await response.StartAsync(cancellationToken);
                await output.FlushAsync(cancellationToken);
            }

            var lastFlushTimestamp = startTimestamp;
            for (var i = 0; i < planned; i++)
            {
                if (i == overrides.FailAfter)
                {
                    await WaitForTheFaultAsync(startTimestamp, lastFlushTimestamp, i, overrides, intervalMs, cancellationToken);
                    outcome = LedgerOutcome.Failed;
                    return;
                }

                await WaitUntilAsync(startTimestamp, CatchUpDueMs(overrides.DueMs(i, intervalMs), i, startTimestamp, lastFlushTimestamp, intervalMs), cancellationToken);
                if (i == 0)
                {
                    firstTokenTimestamp = time.GetTimestamp();
                    writer.WriteStart(output);
                }

                if (endsOnLastToken && i == planned - 1)
                {
                    break;
                }

                writer.WriteToken(output, generation.Script.Token(i));
                if (writer.Streams && !await FlushAsync(output, cancellationToken))
                {
                    return;
                }

                lastFlushTimestamp = time.GetTimestamp();
                ledger.TokenSent(record);
            }

            // Failing after the last token still withholds the final chunk: the client never sees a clean end.
            if (planned == overrides.FailAfter)
            {
                await WaitForTheFaultAsync(startTimestamp, lastFlushTimestamp, planned, overrides, intervalMs, cancellationToken);
                outcome = LedgerOutcome.Failed;
                return;
            }

            if (planned == 0)
            {
                await WaitUntilAsync(startTimestamp, overrides.TimeToFirstTokenMs, cancellationToken);
                firstTokenTimestamp = time.GetTimestamp();
                writer.WriteStart(output);
            }

            var now = time.GetTimestamp();
            var tokensSent = record.TokensSent + (endsOnLastToken ? 1 : 0);
            writer.WriteEnd(output, overrides.Clock is null
                ? new GenerationStats(
                    tokensSent,
                    Total: time.GetElapsedTime(startTimestamp, now),
                    PromptEval: time.GetElapsedTime(startTimestamp, firstTokenTimestamp),
                    Eval: time.GetElapsedTime(firstTokenTimestamp, now))
                : GenerationStats.Nominal(tokensSent, overrides.TimeToFirstTokenMs, intervalMs));
            if (await FlushAsync(output, cancellationToken))
            {
                if (endsOnLastToken)
                {
                    ledger.TokenSent(record);
                }

                outcome = LedgerOutcome.Completed;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException)
        {
            // The client went away (or the host is stopping): the expected way for a stream to end early.
        }
        finally
        {
            Finish(context, record, outcome);
        }
    }

    private void Finish(HttpContext context, LedgerRecord record, LedgerOutcome outcome)
    {
        switch (outcome)
        {
            case LedgerOutcome.Failed:
                GenerationLog.FaultInjected(logger, record.Id, record.TokensSent);
                context.Abort();
                break;
            case LedgerOutcome.Cancelled:
                GenerationLog.Cancelled(logger, record.Id, record.TokensSent, record.TokensPlanned);

                // Stopped by shutdown rather than by the client: reset, so the client cannot mistake
                // a truncated body for a complete one.
                if (!context.RequestAborted.IsCancellationRequested)
                {
                    context.Abort();
                }

                break;
            default:
                GenerationLog.Completed(logger, record.Id, record.TokensSent);
                break;
        }

        ledger.End(record, outcome);
    }

    /// <summary>Waits for an absolute point on the schedule, so time spent writing never accumulates as drift.</summary>
    private Task WaitUntilAsync(long startTimestamp, double dueMs, CancellationToken cancellationToken)
    {
        var remaining = TimeSpan.FromTicks((long)(dueMs * TimeSpan.TicksPerMillisecond)) - time.GetElapsedTime(startTimestamp);
        if (remaining <= TimeSpan.Zero)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return Task.CompletedTask;
        }

        return Task.Delay(remaining, time, cancellationToken);
    }

    /// <summary>After a stall the tokens that fell due meanwhile come this many times faster than the model's pace
    /// until the schedule is met again, rather than all at once.</summary>
    internal const double CatchUpSpeed = 4;

    /// <summary>When token <paramref name="index"/> goes out: when it is due, and, behind schedule, no sooner than a
    /// quarter of an interval after the last flush. A process held up (a long collection, a busy machine) used to write
    /// every overdue token in one burst, which Kestrel's flush accepts at once: the ledger then counted as sent a
    /// burst that arrived as the client's abort did and that nobody could have read. A model server that stalls
    /// does not answer in one burst either. The schedule is met again a third of the stall's length after it, so the
    /// end stays where the schedule puts it (or that much later). Where a quarter interval is finer than the timer
    /// (above 250 tokens a second) the schedule alone paces.</summary>
    private double CatchUpDueMs(double dueMs, int index, long startTimestamp, long lastFlushTimestamp, double intervalMs)
    {
        var gapMs = intervalMs / CatchUpSpeed;
        return index == 0 || gapMs < 1
            ? dueMs
            : Math.Max(dueMs, time.GetElapsedTime(startTimestamp, lastFlushTimestamp).TotalMilliseconds + gapMs);
    }

    /// <summary>An injected fault is the server dying while it generates token <paramref name="index"/>: the
    /// reset comes when that token would have been due, and never sooner than one interval after the last
    /// flush (or the start). Kestrel's flush only hands bytes to its socket loop and an abort drops what that
    /// loop has not sent, so a reset folded onto the last flush (a paused process catching up its schedule)
    /// could take the response headers with it and turn "reset mid-stream" into "reset before any response".</summary>
    private Task WaitForTheFaultAsync(
        long startTimestamp, long lastFlushTimestamp, int index, GenerationOverrides overrides, double intervalMs, CancellationToken cancellationToken)
    {
        var dueMs = overrides.DueMs(index, intervalMs);
        var afterLastFlushMs = time.GetElapsedTime(startTimestamp, lastFlushTimestamp).TotalMilliseconds + intervalMs;
        return WaitUntilAsync(startTimestamp, Math.Max(dueMs, afterLastFlushMs), cancellationToken);
    }

    /// <returns>False when the client is no longer reading.</returns>
    private static async ValueTask<bool> FlushAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        var result = await output.FlushAsync(cancellationToken);
        return !result.IsCanceled && !result.IsCompleted;
    }

    /// <summary>Refuses a request before any generation, in <paramref name="shape"/>.</summary>
    public async Task RejectAsync(HttpContext context, int statusCode, string message, ErrorShape shape)
    {
        GenerationLog.Rejected(logger, context.Request.Path.Value ?? string.Empty, statusCode);
        await ErrorResponse.WriteAsync(context, statusCode, message, shape);
    }
}
