using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions;

public sealed class HostileKeyTests
{
    private static byte[] Header(string name, byte[] value) => [.. Encoding.ASCII.GetBytes(name + ": "), .. value, .. "\r\n"u8.ToArray()];

    private static void AssertOpenAiError(string body, string code)
    {
        var error = JsonDocument.Parse(body).RootElement.GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
    }

    [Fact]
    public async Task KeyOver256Bytes_400WithOpenAiError_NotForwarded()
    {
        await using var stack = await Stack.StartAsync();
        var (status, head, body) = await RawHttp.SendAsync(stack.Gateway.BaseAddress,
            RawHttp.ChatPost(Header("X-Session-Id", Encoding.ASCII.GetBytes(new string('k', 257)))));

        Assert.Equal(400, status);
        Assert.Contains("application/json", head);
        AssertOpenAiError(body, "invalid_session_key");
        Assert.Empty(stack.Ledger.Snapshot());
    }

    [Fact]
    public async Task KeyOf10KB_400WithOpenAiError()
    {
        await using var stack = await Stack.StartAsync();
        var (status, _, body) = await RawHttp.SendAsync(stack.Gateway.BaseAddress,
            RawHttp.ChatPost(Header("X-Session-Id", Encoding.ASCII.GetBytes(new string('k', 10 * 1024)))));

        Assert.Equal(400, status);
        AssertOpenAiError(body, "invalid_session_key");
        Assert.Empty(stack.Ledger.Snapshot());
    }

    [Fact]
    public async Task KeyOfExactly256Bytes_Accepted()
    {
        await using var stack = await Stack.StartAsync();
        var key = new string('k', 256);
        var (status, _, _) = await RawHttp.SendAsync(stack.Gateway.BaseAddress,
            RawHttp.ChatPost(Header("X-Session-Id", Encoding.ASCII.GetBytes(key))));

        Assert.Equal(200, status);
        Assert.Equal(key, Assert.Single(stack.Ledger.Snapshot()).SessionId);
    }

    [Fact]
    public async Task KeyWithTabControlCharacter_400()
    {
        await using var stack = await Stack.StartAsync();
        var (status, _, body) = await RawHttp.SendAsync(stack.Gateway.BaseAddress,
            RawHttp.ChatPost(Header("X-Session-Id", "abc\tdef"u8.ToArray())));

        Assert.Equal(400, status);
        AssertOpenAiError(body, "invalid_session_key");
        Assert.Empty(stack.Ledger.Snapshot());
    }

    [Theory]
    [InlineData(new byte[] { 0x61, 0x00, 0x62 })] // NUL
    [InlineData(new byte[] { 0x61, 0x01, 0x62 })] // SOH
    [InlineData(new byte[] { 0x61, 0x7F, 0x62 })] // DEL
    [InlineData(new byte[] { 0xC3, 0xA9, 0x74, 0xC3, 0xA9 })] // "été" as UTF-8: not ASCII
    public async Task KeyWithControlOrNonAsciiBytes_400_NothingForwarded(byte[] value)
    {
        await using var stack = await Stack.StartAsync();
        var (status, _, _) = await RawHttp.SendAsync(stack.Gateway.BaseAddress, RawHttp.ChatPost(Header("X-Session-Id", value)));

        Assert.Equal(400, status);
        Assert.Empty(stack.Ledger.Snapshot());
    }

    [Fact]
    public async Task KeyHeaderSentTwice_400()
    {
        await using var stack = await Stack.StartAsync();
        var (status, _, body) = await RawHttp.SendAsync(stack.Gateway.BaseAddress,
            RawHttp.ChatPost([.. Header("X-Session-Id", "a"u8.ToArray()), .. Header("X-Session-Id", "b"u8.ToArray())]));

        Assert.Equal(400, status);
        AssertOpenAiError(body, "invalid_session_key");
    }

    [Fact]
    public async Task EmptyKey_ProxiedUntracked()
    {
        await using var stack = await Stack.StartAsync();
        var (status, _, _) = await RawHttp.SendAsync(stack.Gateway.BaseAddress, RawHttp.ChatPost(Header("X-Session-Id", []))); 

        Assert.Equal(200, status);
        Assert.True(Assert.Single(stack.Ledger.Snapshot()).Completed);
        Assert.Equal(0, stack.Gateway.Registry.Count);
    }
}
