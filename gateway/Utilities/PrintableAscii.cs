namespace Gateway.Utilities;

/// <summary>Printable ASCII (space to <c>~</c>): what a value echoed in logs, labels or errors may hold; a control
/// character could forge a log line, and bytes above 0x7F have no agreed encoding.</summary>
internal static class PrintableAscii
{
    public static bool Is(char c) => c is >= ' ' and <= '~';

    public static bool IsAll(ReadOnlySpan<char> value)
    {
        foreach (var c in value)
        {
            if (!Is(c))
            {
                return false;
            }
        }

        return true;
    }
}
