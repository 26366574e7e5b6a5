namespace MockLlm.Generation;

/// <summary>Never logs prompts or completions: ids, paths and counts only.</summary>
internal static partial class GenerationLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Debug, Message = "Generation {Id} started on {Path}: {TokensPlanned} tokens planned")]
    public static partial void Started(ILogger logger, string id, string path, int tokensPlanned);

    [LoggerMessage(EventId = 2, Level = LogLevel.Debug, Message = "Generation {Id} completed after {TokensSent} tokens")]
    public static partial void Completed(ILogger logger, string id, int tokensSent);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Generation {Id} stopped early (client went away or server stopping) after {TokensSent} of {TokensPlanned} tokens")]
    public static partial void Cancelled(ILogger logger, string id, int tokensSent, int tokensPlanned);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Generation {Id}: aborting the connection after {TokensSent} tokens as asked by X-Mock-Fail-After")]
    public static partial void FaultInjected(ILogger logger, string id, int tokensSent);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Rejected request to {Path} with {StatusCode}")]
    public static partial void Rejected(ILogger logger, string path, int statusCode);
}
