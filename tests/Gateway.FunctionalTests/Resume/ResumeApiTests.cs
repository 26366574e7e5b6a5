using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net.ServerSentEvents;
using Anthropic;
using Anthropic.Models.Messages;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Protocols;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Responses;

namespace Gateway.Tests.Resume;

/// <summary>
/// Every SSE API the gateway knows is resumable, each in its own wire shape; and the official SDKs read a resumable
/// route's streams (which carry the gateway's <c>id:</c> lines) exactly as any other.
/// </summary>
#pragma warning disable OPENAI001 // the Responses client is marked experimental in OpenAI 2.15
public sealed class ResumeApiTests
{
    public static TheoryData<string> SseApis => [.. ApiCase.All.Where(c => !c.Ndjson).Select(c => c.Name)];

    [Theory]
    [MemberData(nameof(SseApis))]
    public async Task EverySseApi_DropThenResume_EventsOnceInOrder_OneRequestGeneratedWhole(string name)
    {
        var api = ApiCase.Named(name);
        await using var stack = await ApiStack.StartAsync("resume", api, Resumable);
        var headers = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = "40", ["X-Mock-Completion-Tokens"] = "40" };
        var first = new SseClient(await StreamReading.SendAsync(StreamReading.NewClient(stack.Stack.Gateway.BaseAddress),
            api.Request("mock-1", "a story", 200, "s1", headers)));
        Assert.Equal(200, (int)first.Response.StatusCode);
        var seen = await first.ReadAsync(es => es.Count >= 4);
        first.Dispose();

        var resume = api.Request("mock-1", "a story", 200, "s1", headers);
        resume.Headers.Add("Last-Event-ID", seen[^1].Id);
        using var response = await StreamReading.SendAsync(stack.Client, resume);
        Assert.Equal(200, (int)response.StatusCode);
        var rest = new List<SseItem<string>>();
        await foreach (var item in SseParser.Create(await response.Content.ReadAsStreamAsync()).EnumerateAsync())
        {
            rest.Add(item);
        }

        var ids = seen.Select(e => e.Id).Concat(rest.Select(e => e.EventId)).ToList();
        Assert.Equal(Enumerable.Range(1, ids.Count).Select(i => $".{i}"), ids.Select(id => id![id!.IndexOf('.')..]));
        Assert.Null(api.ErrorIn((rest[^1].EventType == SseParser.EventTypeDefault ? null : rest[^1].EventType, rest[^1].Data)));
        var entry = await stack.Stack.WaitForEntryAsync("s1", e => e.EndedAt is not null);
        Assert.Single(stack.Stack.Ledger.Snapshot());
        Assert.True(entry is { Completed: true, Cancelled: false });
    }

    [Fact]
    public async Task OpenAiChatSdk_OnAResumableRoute_ReadsTheWholeAnswer()
    {
        await using var stack = await ApiStack.StartAsync("resume-sdk", ApiCase.ChatCompletions, Resumable);
        var options = new OpenAIClientOptions { Endpoint = new Uri(stack.Stack.Gateway.BaseAddress, "v1/"), NetworkTimeout = Wait.Timeout, RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(new HeaderPolicy(new Dictionary<string, string> { ["X-Session-Id"] = "sdk", ["X-Mock-Completion-Tokens"] = "12" }), PipelinePosition.PerCall);
        var client = new ChatClient("mock-1", new ApiKeyCredential("sk-test"), options);
        var text = "";
        ChatFinishReason? finish = null;
        await foreach (var update in client.CompleteChatStreamingAsync([new UserChatMessage("hello")]))
        {
            text += string.Concat(update.ContentUpdate.Select(p => p.Text));
            finish ??= update.FinishReason;
        }

        Assert.Equal(ChatFinishReason.Stop, finish);
        var entry = await stack.Stack.WaitForEntryAsync("sdk", e => e.EndedAt is not null);
        Assert.Equal(entry.TokensSent, text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [Fact]
    public async Task OpenAiResponsesSdk_OnAResumableRoute_EndsWithTheCompletedUpdate()
    {
        await using var stack = await ApiStack.StartAsync("resume-sdk", ApiCase.Responses, Resumable);
        var options = new ResponsesClientOptions { Endpoint = new Uri(stack.Stack.Gateway.BaseAddress, "v1/"), NetworkTimeout = Wait.Timeout, RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(new HeaderPolicy(new Dictionary<string, string> { ["X-Session-Id"] = "sdk", ["X-Mock-Completion-Tokens"] = "12" }), PipelinePosition.PerCall);
        var client = new ResponsesClient(new ApiKeyCredential("sk-test"), options);
        var request = new CreateResponseOptions("gpt-mock", [ResponseItem.CreateUserMessageItem("hello")]) { StreamingEnabled = true, MaxOutputTokenCount = 200 };
        var updates = new List<StreamingResponseUpdate>();
        await foreach (var update in await client.CreateResponseStreamingAsync(request))
        {
            updates.Add(update);
        }

        Assert.IsType<StreamingResponseCompletedUpdate>(updates[^1]);
        Assert.Equal(12, updates.Count(u => u is StreamingResponseOutputTextDeltaUpdate));
    }

    [Fact]
    public async Task AnthropicSdk_OnAResumableRoute_ReadsTheWholeAnswer()
    {
        await using var stack = await ApiStack.StartAsync("resume-sdk", ApiCase.Messages, Resumable);
        using var client = new AnthropicClient(new Anthropic.Core.ClientOptions
        {
            BaseUrl = stack.Stack.Gateway.BaseAddress.ToString().TrimEnd('/'),
            ApiKey = "sk-ant-test",
            MaxRetries = 0,
            Timeout = Wait.Timeout,
            ExtraHeaders = new Dictionary<string, string> { ["X-Session-Id"] = "sdk", ["X-Mock-Completion-Tokens"] = "12" },
        });
        var request = new MessageCreateParams { Model = "claude-mock", MaxTokens = 200, Messages = [new UserMessageParam("hello")] };
        var events = new List<RawMessageStreamEvent>();
        await foreach (var e in client.Messages.CreateStreaming(request))
        {
            events.Add(e);
        }

        Assert.True(events[^1].TryPickStop(out _), "the last event is message_stop");
        var entry = await stack.Stack.WaitForEntryAsync("sdk", e => e.EndedAt is not null);
        Assert.True(entry is { Completed: true, Cancelled: false });
    }

    private static void Resumable(Dictionary<string, string?> settings)
    {
        var route = settings.Keys.First(k => k.EndsWith(":ClusterId", StringComparison.Ordinal)).Split(':')[2];
        settings[$"ReverseProxy:Routes:{route}:Metadata:SessionStreams.Resume"] = "00:00:30";

        // A stream still detached at the end would hold the host's stop until the drain deadline (shipped: five minutes).
        settings["Gateway:Shutdown:DrainTimeout"] = "00:00:02";
    }
}
