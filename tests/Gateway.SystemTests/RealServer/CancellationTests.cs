using System.Globalization;
using Gateway.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Gateway.Tests.RealServer;

/// <summary>
/// The gateway in front of a real llama-server: each way of cutting an answer reaches the model
/// server, which cancels the task and frees the slot (its log says "cancel task", its own token count
/// stops far short of max_tokens), while the client gets the gateway's notice.
/// </summary>
[Collection(LlamaServerCollection.Name)]
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class CancellationTests(LlamaServerFixture fixture, ITestOutputHelper output)
{
    /// <summary>Long enough that no answer ends by itself before the cut (every answer runs to max_tokens;
    /// the tiny model makes about 600 tokens/s, so this is over two seconds), within a slot's context (2048).</summary>
    private const int MaxTokens = 1500;

    /// <summary>Tokens the client reads before it cuts.</summary>
    private const int ReadBeforeCut = 8;

    /// <summary>
    /// Tokens the server may generate past what the gateway passed on: those in flight when the cut
    /// was decided, and those made until the closed connection reached the slot. At about 600 tokens/s,
    /// 100 is some 150 ms, what a loaded CI machine may take; unloaded it is a few tokens (printed).
    /// </summary>
    private const int InFlightSlack = 100;

    private LlamaServer Server => fixture.Server;

    public static TheoryData<string, CutKind> Cases()
    {
        var cases = new TheoryData<string, CutKind>();
        foreach (var api in LlamaApi.Names)
        {
            foreach (var kind in Enum.GetValues<CutKind>())
            {
                cases.Add(api, kind);
            }
        }

        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task CutMidStream_ServerCancelsTask_ClientGetsNotice_TokensStopFarBelowMax(string apiName, CutKind kind)
    {
        var api = LlamaApi.Named(apiName);
        var route = "rs" + Guid.NewGuid().ToString("N")[..10];
        await using var gateway = await GatewayHost.StartAsync(Server.BaseAddress, routeId: route);
        using var ended = new MetricSignal("llm_gateway.streams.ended", route, count: kind == CutKind.Supersede ? 2 : 1);

        // The model server cancelled the task and released its slot: nothing is generating any more.
        var (cut, task, generated) = await Cuts.CutAndCountAsync(Server, gateway, api, kind, "cut-1", MaxTokens, ReadBeforeCut);
        Assert.Equal(0, await Server.MetricAsync("llamacpp:requests_processing"));

        // The client was told why, in its API's own error event, and its stream ended cleanly.
        if (cut.Cut is { } transcript)
        {
            Assert.True(transcript.EndedCleanly, $"the cut stream ended with {transcript.ReadError}");
            Assert.Equal(Cuts.NoticeType(kind), api.NoticeType(transcript));
            Assert.False(api.Completed(transcript));
        }

        // The server stopped within a few tokens of what the gateway had passed on, far below max_tokens.
        await ended.WaitAsync();
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        var samples = await PromText.ParseAsync(client);
        var streamed = PromText.Sum(samples, "llm_gateway_cancellation_tokens_spent_sum", ("route", route), ("model", "tiny"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{api} {kind}: the gateway passed on {streamed} tokens, the server generated {generated} of max {MaxTokens} (task {task})"));
        Assert.Equal(1, PromText.Sum(samples, "llm_gateway_streams_ended_total", ("route", route), ("outcome", Cuts.Outcome(kind))));
        Assert.InRange(streamed, ReadBeforeCut, generated);
        Assert.InRange(generated, streamed, streamed + InFlightSlack);
    }
}
