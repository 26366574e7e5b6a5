using System.Text;

namespace Gateway.Resume;

/// <summary>SSE event blocks as a resumable stream keeps them: split at blank lines, each given the gateway's id.</summary>
internal static class SseEvents
{
    /// <summary>The length of the first whole event of <paramref name="bytes"/>, its blank line included; 0 when
    /// none has ended yet. Lines end with <c>\n</c> or <c>\r\n</c>.</summary>
    public static int NextEventEnd(ReadOnlySpan<byte> bytes)
    {
        var position = 0;
        while (position < bytes.Length)
        {
            var newline = bytes[position..].IndexOf((byte)'\n');
            if (newline < 0)
            {
                return 0;
            }

            var line = bytes.Slice(position, newline);
            position += newline + 1;
            if (line.IsEmpty || (line.Length == 1 && line[0] == '\r'))
            {
                return position;
            }
        }

        return 0;
    }

    /// <summary>The event <paramref name="block"/> (its lines and blank line) with <c>id: <paramref name="id"/></c>
    /// first, ended as the block's first line is (<c>\r\n</c> for Gemini's framing), and any <c>id</c> field of the
    /// upstream's taken out; null for a block with no line but the blank one.</summary>
    public static byte[]? Frame(ReadOnlySpan<byte> block, string id)
    {
        var firstNewline = block.IndexOf((byte)'\n');
        var crlf = firstNewline > 0 && block[firstNewline - 1] == (byte)'\r';
        var idLine = Encoding.ASCII.GetBytes("id: " + id + (crlf ? "\r\n" : "\n"));
        var output = new byte[idLine.Length + block.Length];
        idLine.CopyTo(output, 0);
        var length = idLine.Length;
        var lines = 0;
        var position = 0;
        while (position < block.Length)
        {
            var newline = block[position..].IndexOf((byte)'\n');
            var end = newline < 0 ? block.Length : position + newline + 1;
            var line = block[position..end];
            position = end;
            var text = line.TrimEnd("\r\n"u8);
            if (!text.IsEmpty)
            {
                lines++;
                if (IsIdField(text))
                {
                    continue;
                }
            }

            line.CopyTo(output.AsSpan(length));
            length += line.Length;
        }

        return lines == 0 ? null : output.AsSpan(0, length).ToArray();
    }

    /// <summary>The line sets the event id: <c>id</c> alone, or <c>id:</c> and a value.</summary>
    private static bool IsIdField(ReadOnlySpan<byte> line) =>
        line.StartsWith("id"u8) && (line.Length == 2 || line[2] == (byte)':');
}
