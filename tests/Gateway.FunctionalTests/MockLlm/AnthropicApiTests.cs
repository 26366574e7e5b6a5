using System.Net;
using System.Text;
using Anthropic;
using Anthropic.Core;
using Anthropic.Exceptions;
using Anthropic.Models.Messages;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.MockLlm;

/// <summary>The mock's <c>/v1/messages</c> read by the official Anthropic .NET SDK.</summary>
public sealed class AnthropicApiTests(MockLlmFixture fixture) : IClassFixture<MockLlmFixture>
{
    private const string Prompt = "tell me about messages";

    private AnthropicClient NewClient(string sessionId, int completionTokens) => new(new ClientOptions
    {
        BaseUrl = fixture.Server.BaseAddress.ToString(),
        ApiKey = "sk-ant-test",
        MaxRetries = 0,
        Timeout = Wait.Timeout,
        ExtraHeaders = new Dictionary<string, string> { ["X-Session-Id"] = sessionId, [MockApi.CompletionTokens] = $"{completionTokens}" },
    });

    private static MessageCreateParams Request(long maxTokens) => new()
    {
        Model = "claude-mock",
        MaxTokens = maxTokens,
        Messages = [new UserMessageParam(Prompt)],
    };

    /// <summary>What a streaming caller collects: the text deltas, the start's id, the final stop reason and output total.</summary>
    private static async Task<(string Text, int Deltas, string? Id, StopReason? StopReason, long? OutputTokens, bool Stopped)> StreamAsync(
        AnthropicClient client, MessageCreateParams request)
    {
        var text = new StringBuilder();
        var deltas = 0;
        string? id = null;
        StopReason? stopReason = null;
        long? outputTokens = null;
        var stopped = false;
        await foreach (var streamEvent in client.Messages.CreateStreaming(request))
        {
            if (streamEvent.TryPickStart(out var start))
            {
                id = start.Message.ID;
            }
            else if (streamEvent.TryPickContentBlockDelta(out var blockDelta) && blockDelta.Delta.TryPickText(out var textDelta))
            {
                text.Append(textDelta.Text);
                deltas++;
            }
            else if (streamEvent.TryPickDelta(out var messageDelta))
            {
                stopReason = messageDelta.Delta.StopReason?.Value();
                outputTokens = messageDelta.Usage.OutputTokens;
            }
            else if (streamEvent.TryPickStop(out _))
            {
                stopped = true;
            }
        }

        return (text.ToString(), deltas, id, stopReason, outputTokens, stopped);
    }

    [Fact]
    public async Task StreamedMessage_AnthropicSdk_ReadsTheScriptedTextAndCount_AndEndsWithEndTurn()
    {
        var session = MockApi.NewSessionId();
        using var client = NewClient(session, completionTokens: 7);

        var streamed = await StreamAsync(client, Request(maxTokens: 100));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal(("/v1/messages", "claude-mock", true, 7, 7, true), (entry.Path, entry.Model, entry.Stream, entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(MockApi.ExpectedText(Prompt, 7), streamed.Text);
        Assert.Equal(entry.TokensSent, streamed.Deltas);
        Assert.StartsWith("msg_", streamed.Id);
        Assert.Equal(StopReason.EndTurn, streamed.StopReason);
        Assert.Equal(7, streamed.OutputTokens);
        Assert.True(streamed.Stopped);
    }

    [Fact]
    public async Task StreamedMessage_StoppedByMaxTokens_EndsWithMaxTokens()
    {
        var session = MockApi.NewSessionId();
        using var client = NewClient(session, completionTokens: 10);

        var streamed = await StreamAsync(client, Request(maxTokens: 3));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((3, 3, true), (entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(MockApi.ExpectedText(Prompt, 3), streamed.Text);
        Assert.Equal(StopReason.MaxTokens, streamed.StopReason);
        Assert.Equal(3, streamed.OutputTokens);
        Assert.True(streamed.Stopped);
    }

    [Fact]
    public async Task NonStreamedMessage_AnthropicSdk_ParsesTheMessage()
    {
        var session = MockApi.NewSessionId();
        using var client = NewClient(session, completionTokens: 5);

        var message = await client.Messages.Create(Request(maxTokens: 100));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((false, 5, true), (entry.Stream, entry.TokensSent, entry.Completed));
        Assert.True(Assert.Single(message.Content).TryPickText(out var block));
        Assert.Equal(MockApi.ExpectedText(Prompt, 5), block.Text);
        Assert.Equal(StopReason.EndTurn, message.StopReason?.Value());
        Assert.Equal(5, message.Usage.OutputTokens);
        Assert.Equal(MockApi.PromptTokens(Prompt), message.Usage.InputTokens);
        Assert.Equal("claude-mock", message.Model.Raw());
    }

    [Fact]
    public async Task MissingMaxTokens_Returns400_InAnthropicsErrorShape()
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);
        using var response = await client.SendAsync(MockApi.Post(
            "/v1/messages", """{"model":"claude-mock","stream":true,"messages":[{"role":"user","content":"hi"}]}""", sessionId: null));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = MockApi.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("error", body.GetProperty("type").GetString());
        Assert.Equal("invalid_request_error", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Contains("max_tokens", body.GetProperty("error").GetProperty("message").GetString());
    }

    [Fact]
    public async Task ZeroMaxTokens_AnthropicSdk_RaisesBadRequestWithTheMocksMessage()
    {
        using var client = NewClient(MockApi.NewSessionId(), completionTokens: 5);

        var error = await Assert.ThrowsAsync<AnthropicBadRequestException>(() => client.Messages.Create(Request(maxTokens: 0)));

        Assert.Equal(HttpStatusCode.BadRequest, error.StatusCode);
        Assert.Contains("greater than or equal to 1", error.ResponseBody);
    }
}
