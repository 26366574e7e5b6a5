using System.IO.Pipelines;
using System.Text;
using Gateway.Sessions;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Tests.Sessions;

/// <summary>The bounded peek for <c>body:</c> session keys: it finds the key within its limit and never
/// changes or consumes the body the forwarder then sends.</summary>
public sealed class BodyKeyPeekTests
{
    private static readonly string[][] SessionPath = [["metadata", "session_id"]];

    [Fact]
    public async Task SmallBody_PeekAsync_FindsTheKeyAndLeavesTheBodyUnchanged()
    {
        var body = Encoding.UTF8.GetBytes("{\"model\":\"m\",\"metadata\":{\"session_id\":\"s-1\"},\"messages\":[]}");
        var context = NewContext(body);

        var keys = await BodyKeyPeek.PeekAsync(context.Request, BodyKeyPeek.DefaultMaxBytes, SessionPath, CancellationToken.None);

        Assert.Equal(["s-1"], keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task KeyAfterALongConversationWithinTheLimit_PeekAsync_FindsIt()
    {
        var body = LargeBody(512 * 1024, key: "s-2");
        var context = NewContext(body);

        var keys = await BodyKeyPeek.PeekAsync(context.Request, BodyKeyPeek.DefaultMaxBytes, SessionPath, CancellationToken.None);

        Assert.Equal(["s-2"], keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task KeyPastTheLimit_PeekAsync_IsNotFoundAndTheBodyIsUnchanged()
    {
        var body = LargeBody(256 * 1024, key: "s-3");
        var context = NewContext(body);

        var keys = await BodyKeyPeek.PeekAsync(context.Request, 64 * 1024, SessionPath, CancellationToken.None);

        Assert.Equal([null], keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task BodyArrivingInPieces_PeekAsync_WaitsForTheKeyAndLeavesTheBodyUnchanged()
    {
        var body = LargeBody(256 * 1024, key: "s-4");
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0));
        var context = NewContext(pipe.Reader, body.Length);
        var writing = Task.Run(async () =>
        {
            foreach (var piece in body.Chunk(1000))
            {
                await pipe.Writer.WriteAsync(piece);
            }

            await pipe.Writer.CompleteAsync();
        });

        var keys = await BodyKeyPeek.PeekAsync(context.Request, BodyKeyPeek.DefaultMaxBytes, SessionPath, CancellationToken.None);
        await writing;

        Assert.Equal(["s-4"], keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Theory]
    [InlineData("{\"metadata\":{\"session_id\":\"s\"},,}")]
    [InlineData("{\"metadata\":{\"session_id\":\"s\"}}}")]
    [InlineData("{\"metadata\":{\"session_id\":\"s\"}")]
    public async Task MalformedBody_PeekAsync_NamesNoSession(string json)
    {
        var body = Encoding.UTF8.GetBytes(json);
        var context = NewContext(body);

        var keys = await BodyKeyPeek.PeekAsync(context.Request, BodyKeyPeek.DefaultMaxBytes, SessionPath, CancellationToken.None);

        Assert.Equal([null], keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Theory]
    [InlineData("GET", "application/json")]
    [InlineData("POST", "text/plain")]
    [InlineData("POST", null)]
    public async Task NotAJsonPost_PeekAsync_ReadsNothing(string method, string? contentType)
    {
        var body = Encoding.UTF8.GetBytes("{\"metadata\":{\"session_id\":\"s\"}}");
        var context = NewContext(body);
        context.Request.Method = method;
        context.Request.ContentType = contentType;

        var keys = await BodyKeyPeek.PeekAsync(context.Request, BodyKeyPeek.DefaultMaxBytes, SessionPath, CancellationToken.None);

        Assert.Empty(keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    [Fact]
    public async Task NoBodySources_PeekAsync_ReadsNothing()
    {
        var body = Encoding.UTF8.GetBytes("{\"metadata\":{\"session_id\":\"s\"}}");
        var context = NewContext(body);

        var keys = await BodyKeyPeek.PeekAsync(context.Request, BodyKeyPeek.DefaultMaxBytes, [], CancellationToken.None);

        Assert.Empty(keys);
        Assert.Equal(body, await ReadToEndAsync(context.Request.Body));
    }

    /// <summary>A conversation of about <paramref name="size"/> bytes, then the session key.</summary>
    private static byte[] LargeBody(int size, string key)
    {
        var head = "{\"model\":\"llama3.2\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"";
        var tail = "\"}],\"metadata\":{\"session_id\":\"" + key + "\"},\"max_tokens\":77}";
        return Encoding.UTF8.GetBytes(head + new string('x', size - head.Length - tail.Length) + tail);
    }

    private static DefaultHttpContext NewContext(byte[] body) =>
        NewContext(PipeReader.Create(new MemoryStream(body), new StreamPipeReaderOptions(bufferSize: 4096)), body.Length);

    /// <summary>As Kestrel does it: Request.Body and Request.BodyReader read the same pipe, so bytes the
    /// peek leaves unconsumed are what the forwarder then reads.</summary>
    private static DefaultHttpContext NewContext(PipeReader reader, long length)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.ContentType = "application/json; charset=utf-8";
        context.Request.ContentLength = length;
        context.Features.Set<IRequestBodyPipeFeature>(new PipeBody(reader));
        context.Request.Body = reader.AsStream();
        return context;
    }

    private static async Task<byte[]> ReadToEndAsync(Stream body)
    {
        using var copy = new MemoryStream();
        await body.CopyToAsync(copy);
        return copy.ToArray();
    }

    private sealed class PipeBody(PipeReader reader) : IRequestBodyPipeFeature
    {
        public PipeReader Reader { get; } = reader;
    }
}
