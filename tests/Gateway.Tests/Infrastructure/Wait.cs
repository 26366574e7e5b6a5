namespace Gateway.Tests.Infrastructure;

internal static class Wait
{
    /// <summary>The longest any test waits for a signal; generous, since CI machines are shared.</summary>
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
}
