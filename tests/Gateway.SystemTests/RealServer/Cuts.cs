using System.Net.Http.Headers;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.RealServer;

/// <summary>How a person ends an answer before it is done. Public: a test method's parameter.</summary>
public enum CutKind
{
    /// <summary>Types again: a newer request with the same session key.</summary>
    Supersede,
    /// <summary>Closes the tab: the connection goes away.</summary>
    ClientDrop,
    /// <summary>Presses stop: <c>POST /v1/sessions/{id}/cancel</c> with the stream's own credential.</summary>
    Stop,
}

/// <summary>What a cut left behind: the cut stream as its client saw it (none when the client dropped),
/// and the completion tokens another request generated meanwhile (a superseding request's answer).</summary>
internal sealed record CutResult(StreamTranscript? Cut, long OtherTokens, int OtherRequests);

internal static class Cuts
{
    public const string Authorization = "Bearer real-server-tests";

    /// <summary>The model name of a superseding request, so its short answer teaches no estimator of the cut model.</summary>
    public const string OtherModel = "tiny-other";

    /// <summary>The gateway's notice for each cut, in the final event of the cut stream.</summary>
    public static string? NoticeType(CutKind kind) => kind switch
    {
        CutKind.Supersede => "request_superseded",
        CutKind.Stop => "request_stopped",
        _ => null,
    };

    public static string Outcome(CutKind kind) => kind switch
    {
        CutKind.Supersede => "superseded",
        CutKind.Stop => "stopped",
        _ => "client_disconnected",
    };

    /// <summary>Opens an answer of <paramref name="maxTokens"/> under <paramref name="sessionId"/>.</summary>
    public static Task<LiveStream> OpenAsync(GatewayHost gateway, LlamaApi api, string sessionId, int maxTokens, string model = "tiny") =>
        LiveStream.OpenAsync(gateway.BaseAddress, api, api.Request("tell me a long story " + sessionId, sessionId, maxTokens, model, Authorization));

    /// <summary>
    /// Opens an answer of <paramref name="maxTokens"/>, reads <paramref name="readBeforeCut"/> tokens, cuts it,
    /// and waits for the server to cancel its task and release the slots used. Returns the cut, the
    /// cancelled task's id and the tokens the server generated for the cut answer by its own count.
    /// The server must serve nothing else meanwhile (the collection's tests run one at a time).
    /// </summary>
    public static async Task<(CutResult Result, int Task, long Generated)> CutAndCountAsync(LlamaServer server, GatewayHost gateway,
        LlamaApi api, CutKind kind, string sessionId, int maxTokens, int readBeforeCut, string model = "tiny")
    {
        var mark = server.LineCount;
        var before = await server.TokensPredictedAsync();
        using var stream = await OpenAsync(gateway, api, sessionId, maxTokens, model);
        await stream.ReadContentAsync(readBeforeCut);
        var cut = await CutAsync(kind, stream, gateway, api, sessionId);

        var task = await server.WaitForCancelledTaskAsync(mark);
        await server.WaitForReleasesAsync(1 + cut.OtherRequests, mark);
        Assert.Equal(task, Assert.Single(server.CancelledTasks(mark)));
        var generated = (long)(await server.TokensPredictedAsync() - before) - cut.OtherTokens;
        return (cut, task, generated);
    }

    /// <summary>Cuts <paramref name="stream"/> the way <paramref name="kind"/> says, and reads what its client still gets.</summary>
    public static async Task<CutResult> CutAsync(CutKind kind, LiveStream stream, GatewayHost gateway, LlamaApi api, string sessionId)
    {
        switch (kind)
        {
            case CutKind.Supersede:
            {
                using var client = StreamReading.NewClient(gateway.BaseAddress);
                var newer = await StreamReading.SendAndReadAsync(client, api.Request("short", sessionId, 3, OtherModel, Authorization));
                Assert.True(api.Completed(newer), $"the superseding request did not complete:\n{string.Join('\n', newer.Lines)}");
                var tokens = api.CompletionTokens(newer) ?? throw new InvalidOperationException("the superseding answer reported no usage");
                return new CutResult(await stream.ReadToEndAsync(), tokens, 1);
            }

            case CutKind.Stop:
            {
                using var client = StreamReading.NewClient(gateway.BaseAddress);
                using var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{sessionId}/cancel");
                stop.Headers.Authorization = AuthenticationHeaderValue.Parse(Authorization);
                using var response = await client.SendAsync(stop);
                Assert.Equal(200, (int)response.StatusCode);
                Assert.Equal(1, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("cancelled").GetInt32());
                return new CutResult(await stream.ReadToEndAsync(), 0, 0);
            }

            default:
                stream.Dispose();
                return new CutResult(null, 0, 0);
        }
    }
}
