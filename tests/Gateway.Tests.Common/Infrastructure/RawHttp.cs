using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Infrastructure;

/// <summary>Sends bytes no well-behaved client library would send, and reads the raw answer.</summary>
internal static class RawHttp
{
    public static async Task<(int Status, string Head, string Body)> SendAsync(Uri baseAddress, byte[] request)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", baseAddress.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(request);
        using var timeout = new CancellationTokenSource(Wait.Timeout);
        var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int read;
        while ((read = await stream.ReadAsync(chunk, timeout.Token)) > 0)
        {
            buffer.Write(chunk, 0, read);
        }

        var text = Encoding.Latin1.GetString(buffer.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = split < 0 ? text : text[..split];
        var body = split < 0 ? "" : text[(split + 4)..];
        var status = int.Parse(head.Split(' ', 3)[1]);
        return (status, head, body);
    }

    /// <summary>A POST to /v1/chat/completions with <paramref name="extraHeaderLines"/> (raw bytes, CRLF-terminated) and Connection: close.</summary>
    public static byte[] ChatPost(byte[] extraHeaderLines)
    {
        var body = """{"model":"mock-1","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}"""u8.ToArray();
        var head = Encoding.ASCII.GetBytes(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\n" +
            $"Content-Length: {body.Length}\r\n");
        return [.. head, .. extraHeaderLines, .. "\r\n"u8.ToArray(), .. body];
    }
}
