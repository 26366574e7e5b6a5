using System.Globalization;
using System.Text;

namespace Gateway.Utilities;

/// <summary>A caller's value (a model name, say) as a log field may carry it: printable ASCII only, every other
/// character as <c>\uXXXX</c> (a newline cannot forge a log line), and at most <see cref="MaxChars"/> characters.</summary>
internal static class LogText
{
    public const int MaxChars = 128;

    /// <summary>Marks a value cut at <see cref="MaxChars"/>.</summary>
    public const string Cut = "...";

    public static string? Bounded(string? value)
    {
        if (value is null)
        {
            return null;
        }

        if (value.Length <= MaxChars && PrintableAscii.IsAll(value) && !value.Contains('\\'))
        {
            return value;
        }

        var text = new StringBuilder(MaxChars + Cut.Length);
        foreach (var c in value)
        {
            var piece = PrintableAscii.Is(c) && c != '\\'
                ? null
                : "\\u" + ((int)c).ToString("x4", CultureInfo.InvariantCulture);
            var length = piece?.Length ?? 1;
            if (text.Length + length > MaxChars)
            {
                return text.Append(Cut).ToString();
            }

            if (piece is null)
            {
                text.Append(c);
            }
            else
            {
                text.Append(piece);
            }
        }

        return text.ToString();
    }
}
