using System.Text;
using Gateway.Resume;

namespace Gateway.Tests.Resume;

public sealed class SseEventsTests
{
    [Theory]
    [InlineData("data: a\n\n", 9)]
    [InlineData("data: a\r\n\r\ndata: b\r\n\r\n", 11)]
    [InlineData("event: x\ndata: a\n\ndata: b", 18)]
    [InlineData("data: a\n", 0)]
    [InlineData("data: a", 0)]
    [InlineData("", 0)]
    [InlineData("\n", 1)]
    public void NextEventEnd_IsTheFirstBlankLine(string text, int end) =>
        Assert.Equal(end, SseEvents.NextEventEnd(Encoding.UTF8.GetBytes(text)));

    [Fact]
    public void Frame_PutsTheIdFirst_TakesTheUpstreamsIdsOut_KeepsEverythingElse()
    {
        var framed = SseEvents.Frame("event: delta\nid: upstream-7\nid\ndata: {\"a\":1}\n: comment\nidentity: kept\n\n"u8, "S.3");
        Assert.Equal("id: S.3\nevent: delta\ndata: {\"a\":1}\n: comment\nidentity: kept\n\n", Encoding.UTF8.GetString(framed!));
    }

    [Fact]
    public void Frame_FollowsTheEventsLineEndings()
    {
        var framed = SseEvents.Frame("data: {\"x\":1}\r\n\r\n"u8, "S.1");
        Assert.Equal("id: S.1\r\ndata: {\"x\":1}\r\n\r\n", Encoding.UTF8.GetString(framed!));
    }

    [Theory]
    [InlineData("\n")]
    [InlineData("\r\n")]
    public void Frame_BlankLineAlone_IsNoEvent(string text) => Assert.Null(SseEvents.Frame(Encoding.UTF8.GetBytes(text), "S.1"));
}

public sealed class ResumeIdsTests
{
    [Fact]
    public void NewIds_AreLongRandomAndOfTheGatewaysForm()
    {
        var ids = Enumerable.Range(0, 1000).Select(_ => ResumeIds.NewStreamId()).ToHashSet();
        Assert.Equal(1000, ids.Count);
        var id = ResumeIds.Of(ids.First(), 42);
        Assert.True(id.Length <= ResumeIds.MaxLength);
        Assert.DoesNotContain(id, c => c is ':' or ' ' or '\t' or '\r' or '\n' || c > '~');
        Assert.True(ResumeIds.TryParse(id, out var stream, out var sequence));
        Assert.Equal(ids.First(), stream);
        Assert.Equal(42, sequence);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.0")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.01")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.-1")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.+1")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA. 1")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.1x")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAA.99999999999999999999")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAA.1")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAA.1")]
    public void TryParse_RefusesWhatIsNotTheGatewaysForm(string value) => Assert.False(ResumeIds.TryParse(value, out _, out _));

    [Theory]
    [InlineData("a\u0001b", false)]
    [InlineData("caf\u00e9", false)]
    [InlineData("tab\there", false)]
    [InlineData("\n", false)]
    [InlineData("printable with spaces ~", true)]
    public void IsWellFormed_PrintableAsciiOnly(string value, bool expected) => Assert.Equal(expected, ResumeIds.IsWellFormed(value));

    [Fact]
    public void IsWellFormed_AtMost64Characters()
    {
        Assert.True(ResumeIds.IsWellFormed(new string('a', 64)));
        Assert.False(ResumeIds.IsWellFormed(new string('a', 65)));
        Assert.False(ResumeIds.IsWellFormed(new string('a', 100_000)));
    }
}
