using System.Net;
using System.Text;
using Gateway.Tests.Infrastructure;
using System.Diagnostics;
using MockLlm;

namespace Gateway.Tests.Sessions;

/// <summary>
/// Claims are ordered by when requests arrive, not by when their keys could be read: an older request
/// that uploads its body slowly (its key is in the body) must not supersede a newer one that began
/// streaming meanwhile. It is answered as superseded and never reaches the model server.
/// </summary>
public sealed class ArrivalOrderTests
{
    [Fact]
    public async Task OlderRequestWithASlowUpload_KeyReadAfterANewerOnesClaim_IsSupersededAndTheNewerRunsOn()
    {
        using var arrived = new ArrivalSignal();
        await using var stack = await Stack.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 0 },
            s => s["ReverseProxy:Routes:llm:Metadata:SessionStreams.Sources"] = "body:metadata.session_id");
        var head = "{\"model\":\"mock-1\",\"stream\":true,\"max_tokens\":40,\"messages\":[{\"role\":\"user\",\"content\":\"older\"}],";
        var tail = "\"metadata\":{\"session_id\":\"k\"}}";
        var slow = new SlowContent(Encoding.UTF8.GetBytes(head), Encoding.UTF8.GetBytes(tail));
        var olderRequest = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = slow };
        olderRequest.Headers.Add(ArrivalSignal.Marker, arrived.Id);
        var older = StreamReading.SendAndReadAsync(stack.Client, olderRequest);
        await slow.HeadSent.WaitAsync(Wait.Timeout);
        await arrived.First.WaitAsync(Wait.Timeout); // the gateway stamped the older request's arrival (its body still uploading)

        // The newer request arrives after the older one began, and streams.
        var newerBody = "{\"model\":\"mock-1\",\"stream\":true,\"max_tokens\":30,\"messages\":[{\"role\":\"user\",\"content\":\"newer\"}],\"metadata\":{\"session_id\":\"k\"}}";
        using var newer = await StreamReading.SendAsync(stack.Client,
            new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(newerBody, Encoding.UTF8, "application/json") });
        await stack.Ledger.WaitForAsync(l => l.Count == 1 && l[0].TokensSent >= 2, Wait.Timeout);

        slow.SendTail(); // now the older request's key can be read
        var olderTranscript = await older;
        var newerTranscript = await StreamReading.ReadToEndAsync(newer);

        Assert.True((int)HttpStatusCode.Conflict == olderTranscript.StatusCode,
            $"older: {olderTranscript.StatusCode} {string.Join('|', olderTranscript.Lines.TakeLast(2))}; newer: {string.Join('|', newerTranscript.DataEvents.TakeLast(2))}; ledger: {string.Join("; ", stack.Ledger.Snapshot())}");
        Assert.Contains("request_superseded", string.Join('\n', olderTranscript.Lines), StringComparison.Ordinal);
        Assert.Equal("[DONE]", newerTranscript.DataEvents[^1]);
        var entry = Assert.Single(await stack.Ledger.WaitForAsync(l => l.All(e => e.EndedAt is not null), Wait.Timeout));
        Assert.True(entry.Completed); // the newer stream ran to its end; the older never reached the mock
        Assert.Equal(30, entry.TokensSent);
    }

    /// <summary>Completes when the gateway has stamped a request's arrival (its diagnostic event).</summary>
    private sealed class ArrivalSignal : IObserver<DiagnosticListener>, IObserver<KeyValuePair<string, object?>>, IDisposable
    {
        private readonly TaskCompletionSource _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly IDisposable _all;
        private IDisposable? _listener;

        public ArrivalSignal() => _all = DiagnosticListener.AllListeners.Subscribe(this);

        public Task First => _first.Task;

        public void OnNext(DiagnosticListener value)
        {
            if (value.Name == "Gateway.Sessions")
            {
                _listener = value.Subscribe(this, name => name == Gateway.Sessions.SessionResolution.ArrivedEvent);
            }
        }

        /// <summary>The header that marks the request this signal waits for (other tests' gateways share the listener).</summary>
        public const string Marker = "X-Test-Arrival";

        public string Id { get; } = Guid.NewGuid().ToString("N");

        public void OnNext(KeyValuePair<string, object?> value)
        {
            if (value.Value is Microsoft.AspNetCore.Http.HttpContext context && context.Request.Headers[Marker] == Id)
            {
                _first.TrySetResult();
            }
        }

        public void OnCompleted()
        {
        }

        public void OnError(Exception error)
        {
        }

        public void Dispose()
        {
            _listener?.Dispose();
            _all.Dispose();
        }
    }

    /// <summary>A JSON body sent in two parts, the second only when the test says so.</summary>
    private sealed class SlowContent : HttpContent
    {
        private readonly byte[] head;
        private readonly byte[] tail;

        public SlowContent(byte[] head, byte[] tail)
        {
            this.head = head;
            this.tail = tail;
            Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        }

        private readonly TaskCompletionSource _headSent = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _sendTail = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task HeadSent => _headSent.Task;

        public void SendTail() => _sendTail.TrySetResult();

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(head);
            await stream.FlushAsync();
            _headSent.TrySetResult();
            await _sendTail.Task.WaitAsync(Wait.Timeout);
            await stream.WriteAsync(tail);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = head.Length + tail.Length;
            return true;
        }
    }
}
