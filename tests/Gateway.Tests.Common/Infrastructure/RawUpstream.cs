using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Infrastructure;

/// <summary>What <see cref="RawUpstream"/> answers: a status, a Content-Type and body chunks, each flushed on its own.</summary>
internal sealed record RawResponse(string ContentType, IReadOnlyList<byte[]> Chunks, int StatusCode = 200)
{
    public static RawResponse Sse(string body) => new("text/event-stream", [System.Text.Encoding.UTF8.GetBytes(body)]);

    /// <summary>A small well-formed OpenAI chat stream: what a healthy backend sends.</summary>
    public static RawResponse HealthySse() => Sse(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n" +
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n" +
        "data: [DONE]\n\n");

    /// <summary>The whole body as one array.</summary>
    public byte[] Body()
    {
        var body = new byte[Chunks.Sum(c => c.Length)];
        var at = 0;
        foreach (var chunk in Chunks)
        {
            chunk.CopyTo(body, at);
            at += chunk.Length;
        }

        return body;
    }
}

/// <summary>One request as the upstream received it.</summary>
internal sealed record ReceivedRequest(string Method, string Path, long? ContentLength, string? TransferEncoding, byte[] Body);

/// <summary>
/// A backend that sends exactly the bytes it is told to, with no protocol knowledge of its own: the
/// hostile or broken model server a gateway must survive. Records every request body it receives.
/// </summary>
internal sealed class RawUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedRequest> _received = new();

    private RawUpstream(WebApplication app, RawResponse response)
    {
        _app = app;
        Response = response;
    }

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>What the next request gets; a test may swap it between requests.</summary>
    public RawResponse Response { get; set; }

    /// <summary>Runs when a request has been read and before its response is written: while the
    /// gateway is forwarding, so a test can look at the gateway's state at that moment.</summary>
    public Action<ReceivedRequest>? OnRequest { get; set; }

    public IReadOnlyList<ReceivedRequest> Received => [.. _received];

    public static async Task<RawUpstream> StartAsync(RawResponse? response = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var upstream = new RawUpstream(app, response ?? RawResponse.HealthySse());
        app.Run(upstream.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();
        upstream.BaseAddress = new Uri(address.TrimEnd('/') + "/");
        return upstream;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        var received = new ReceivedRequest(context.Request.Method, context.Request.Path.Value ?? "", context.Request.ContentLength,
            context.Request.Headers.TransferEncoding.ToString() is { Length: > 0 } te ? te : null, body.ToArray());
        _received.Enqueue(received);
        OnRequest?.Invoke(received);

        var response = Response;
        context.Response.StatusCode = response.StatusCode;
        context.Response.ContentType = response.ContentType;
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        await context.Response.StartAsync(context.RequestAborted);
        foreach (var chunk in response.Chunks)
        {
            await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}
