using System.Text;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using MockLlm;

namespace Gateway.Tests.Protocols;

/// <summary>
/// An upstream that has sent half an event when the stream is superseded: the old client must get every
/// whole event, then its API's error, and never the half event (an SDK fails on the torn JSON and never
/// sees why its stream ended). The events are the mock's own, for every API.
/// </summary>
public sealed class TornEventTests
{
    public static TheoryData<string, bool> Cases()
    {
        var cases = new TheoryData<string, bool>();
        foreach (var api in ApiCase.All)
        {
            cases.Add(api.Name, true);  // the half event in the same write as whole ones
            cases.Add(api.Name, false); // the half event in a write of its own
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task SupersededMidEvent_EveryApi_OldClientGetsWholeEventsThenItsError(string api, bool sameWrite)
    {
        var c = ApiCase.Named(api);
        var (contentType, events) = await RecordedEventsAsync(c);
        var whole = Encoding.UTF8.GetBytes(string.Concat(events.Take(2)));
        var half = Encoding.UTF8.GetBytes(events[2][..(events[2].Length / 2)]);
        await using var upstream = await TornUpstream.StartAsync(contentType, sameWrite ? [[.. whole, .. half]] : [whole, half], Encoding.UTF8.GetBytes(string.Concat(events)));
        await using var gateway = await GatewayHost.StartAsync(upstream.BaseAddress);
        using var client = StreamReading.NewClient(gateway.BaseAddress);

        using var old = await StreamReading.SendAsync(client, c.Request("mock-1", "a long story", 200, "torn"));
        var oldBody = await old.Content.ReadAsStreamAsync();
        await upstream.HalfSent.WaitAsync(Wait.Timeout);
        using var newer = await StreamReading.SendAsync(client, c.Request("mock-1", "again", 200, "torn"));
        Assert.Equal(200, (int)newer.StatusCode);
        using var rest = new MemoryStream();
        await oldBody.CopyToAsync(rest);
        var received = rest.ToArray();

        Assert.True(received.AsSpan().StartsWith(whole), $"{c}: the whole events did not arrive unchanged");
        var after = Encoding.UTF8.GetString(received.AsSpan(whole.Length));
        Assert.DoesNotContain(Encoding.UTF8.GetString(half), after, StringComparison.Ordinal);
        var tail = await c.ReadEventsAsync(new MemoryStream(received.AsSpan(whole.Length).ToArray()));
        var error = c.ErrorIn(Assert.Single(tail));
        Assert.NotNull(error);
        Assert.Equal(ApiStack.Notice("superseded").Message, error.Message);
        await upstream.FirstAborted.WaitAsync(Wait.Timeout); // the upstream request was aborted
    }

    /// <summary>The mock's stream for the API, split into its events (each with its separator).</summary>
    private static async Task<(string ContentType, List<string> Events)> RecordedEventsAsync(ApiCase c)
    {
        await using var mock = await MockLlmServer.StartAsync();
        using var http = new HttpClient { BaseAddress = mock.BaseAddress };
        using var response = await http.SendAsync(c.Request("mock-1", "a long story", 200, null,
            new Dictionary<string, string> { ["X-Mock-Completion-Tokens"] = "6", ["X-Mock-Tokens-Per-Second"] = "10000" }));
        var body = await response.Content.ReadAsStringAsync();
        var separator = c.Ndjson ? "\n" : body.Contains("\r\n\r\n", StringComparison.Ordinal) ? "\r\n\r\n" : "\n\n";
        var events = body.Split(separator, StringSplitOptions.RemoveEmptyEntries).Select(e => e + separator).ToList();
        Assert.True(events.Count >= 4, $"{c}: {body}");
        return (response.Content.Headers.ContentType!.ToString(), events);
    }

    /// <summary>Answers the first request with the given writes and then holds it open until it is aborted;
    /// answers later ones with a whole stream.</summary>
    private sealed class TornUpstream : IAsyncDisposable
    {
        private readonly WebApplication _app;
        private readonly TaskCompletionSource _halfSent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _firstAborted = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _requests;

        private TornUpstream(WebApplication app) => _app = app;

        public Uri BaseAddress { get; private set; } = null!;
        public Task HalfSent => _halfSent.Task;
        public Task FirstAborted => _firstAborted.Task;

        public static async Task<TornUpstream> StartAsync(string contentType, byte[][] firstWrites, byte[] laterBody)
        {
            var builder = WebApplication.CreateSlimBuilder();
            builder.WebHost.UseUrls("http://127.0.0.1:0");
            builder.Logging.ClearProviders();
            var app = builder.Build();
            var upstream = new TornUpstream(app);
            app.Run(async context =>
            {
                await context.Request.Body.CopyToAsync(Stream.Null);
                context.Response.ContentType = contentType;
                context.Features.Get<IHttpResponseBodyFeature>()!.DisableBuffering();
                if (Interlocked.Increment(ref upstream._requests) > 1)
                {
                    await context.Response.Body.WriteAsync(laterBody);
                    return;
                }

                foreach (var write in firstWrites)
                {
                    await context.Response.Body.WriteAsync(write);
                    await context.Response.Body.FlushAsync();
                }

                upstream._halfSent.TrySetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    upstream._firstAborted.TrySetResult();
                }
            });
            await app.StartAsync();
            upstream.BaseAddress = new Uri(app.Urls.Single().TrimEnd('/') + "/");
            return upstream;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
    }
}
