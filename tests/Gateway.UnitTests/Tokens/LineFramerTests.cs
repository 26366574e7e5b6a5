using System.Text;
using Gateway.Tokens;

namespace Gateway.Tests.Tokens;

public sealed class LineFramerTests
{
    private static List<string> ReadAll(LineFramer framer, params IEnumerable<byte[]> writes)
    {
        var lines = new List<string>();
        foreach (var write in writes)
        {
            var input = new ReadOnlySpan<byte>(write);
            while (framer.TryReadLine(ref input, out var line))
            {
                lines.Add(Encoding.UTF8.GetString(line));
            }

            Assert.True(input.IsEmpty);
        }

        return lines;
    }

    [Fact]
    public void MixedLineEndings_AnySplit_YieldSameLinesAndPending()
    {
        var bytes = Encoding.UTF8.GetBytes("one\r\ntwo\n\r\nthree\r\n\nlast");
        string[] expected = ["one", "two", "", "three", ""];

        for (var i = 0; i <= bytes.Length; i++)
        {
            using var framer = new LineFramer();

            var lines = ReadAll(framer, bytes[..i], bytes[i..]);

            Assert.Equal(expected, lines);
            Assert.Equal("last", Encoding.UTF8.GetString(framer.Pending));
        }
    }

    [Fact]
    public void CompleteLineFromCarry_Pending_IsEmpty()
    {
        using var framer = new LineFramer();

        var lines = ReadAll(framer, "par"u8.ToArray(), "tial\n"u8.ToArray());

        Assert.Equal(["partial"], lines);
        Assert.True(framer.Pending.IsEmpty);
    }

    [Fact]
    public void LineOverLimitAcrossWrites_TryReadLine_SkipsItAndReadsTheNextLine()
    {
        using var framer = new LineFramer();
        var piece = new byte[256 * 1024];
        piece.AsSpan().Fill((byte)'x');

        var lines = ReadAll(framer, Enumerable.Repeat(piece, 5).Append("tail\nnext\n"u8.ToArray()));

        Assert.True(framer.SkippedOversizedLine);
        Assert.Equal(["next"], lines);
    }

    [Fact]
    public void LineOverLimitStillOpen_Pending_IsEmpty()
    {
        using var framer = new LineFramer();
        var piece = new byte[LineFramer.MaxLineBytes + 1];

        ReadAll(framer, piece);

        Assert.True(framer.SkippedOversizedLine);
        Assert.True(framer.Pending.IsEmpty);
    }

    [Fact]
    public void LineExactlyAtLimitAcrossWrites_TryReadLine_KeepsIt()
    {
        using var framer = new LineFramer();
        var half = new byte[LineFramer.MaxLineBytes / 2];
        half.AsSpan().Fill((byte)'y');

        var lines = ReadAll(framer, half, half, "\n"u8.ToArray());

        Assert.False(framer.SkippedOversizedLine);
        Assert.Equal(LineFramer.MaxLineBytes, Assert.Single(lines).Length);
    }

    /// <summary>The limit is on the line, not on how the upstream happened to write it.</summary>
    [Fact]
    public void LineOverLimitInOneWrite_TryReadLine_SkipsItLikeAcrossWrites()
    {
        using var framer = new LineFramer();
        var line = new byte[LineFramer.MaxLineBytes + 2];
        line.AsSpan().Fill((byte)'z');
        line[^1] = (byte)'\n';

        var lines = ReadAll(framer, line, "next\n"u8.ToArray());

        Assert.True(framer.SkippedOversizedLine);
        Assert.Equal(["next"], lines);
    }
}
