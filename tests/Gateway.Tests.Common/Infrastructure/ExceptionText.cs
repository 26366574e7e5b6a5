namespace Gateway.Tests.Infrastructure;

internal static class ExceptionText
{
    /// <summary>The message of <paramref name="error"/> and of every exception inside it (inner and
    /// aggregated), as one text: a start-up failure names the bad key in whichever one the host threw.</summary>
    public static string Flatten(Exception error) =>
        error is AggregateException aggregate
            ? error.Message + " | " + string.Join(" | ", aggregate.Flatten().InnerExceptions.Select(Flatten))
            : error.Message + (error.InnerException is null ? "" : " | " + Flatten(error.InnerException));
}
