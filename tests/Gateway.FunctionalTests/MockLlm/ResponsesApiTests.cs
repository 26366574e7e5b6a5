using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using Gateway.Tests.Infrastructure;
using OpenAI.Responses;

namespace Gateway.Tests.MockLlm;

/// <summary>The mock's <c>/v1/responses</c> read by the official OpenAI .NET SDK's <see cref="ResponsesClient"/>.</summary>
#pragma warning disable OPENAI001 // the Responses client is marked experimental in OpenAI 2.15
public sealed class ResponsesApiTests(MockLlmFixture fixture) : IClassFixture<MockLlmFixture>
{
    private const string Prompt = "tell me about responses";

    private ResponsesClient NewClient(string sessionId, int completionTokens)
    {
        var options = new ResponsesClientOptions
        {
            Endpoint = new Uri(fixture.Server.BaseAddress, "v1/"),
            NetworkTimeout = Wait.Timeout,
            RetryPolicy = new ClientRetryPolicy(0),
        };
        options.AddPolicy(
            new HeaderPolicy(new Dictionary<string, string> { ["X-Session-Id"] = sessionId, [MockApi.CompletionTokens] = $"{completionTokens}" }),
            PipelinePosition.PerCall);
        return new ResponsesClient(new ApiKeyCredential("sk-test"), options);
    }

    private static CreateResponseOptions Request(bool stream, int? maxOutputTokens = null) =>
        new("gpt-mock", [ResponseItem.CreateUserMessageItem(Prompt)]) { StreamingEnabled = stream, MaxOutputTokenCount = maxOutputTokens };

    [Fact]
    public async Task StreamedResponse_OpenAiSdk_ReadsTheScriptedTextAndCount_AndEndsCompleted()
    {
        var session = MockApi.NewSessionId();
        var text = new StringBuilder();
        var deltas = 0;
        var sequence = new List<int>();
        ResponseResult? completed = null;
        await foreach (var update in await NewClient(session, completionTokens: 7).CreateResponseStreamingAsync(Request(stream: true)))
        {
            sequence.Add(update.SequenceNumber);
            switch (update)
            {
                case StreamingResponseOutputTextDeltaUpdate delta:
                    text.Append(delta.Delta);
                    deltas++;
                    break;
                case StreamingResponseCompletedUpdate done:
                    completed = done.Response;
                    break;
            }
        }

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal(("/v1/responses", "gpt-mock", true, 7, 7, true), (entry.Path, entry.Model, entry.Stream, entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(MockApi.ExpectedText(Prompt, 7), text.ToString());
        Assert.Equal(entry.TokensSent, deltas);
        Assert.Equal(Enumerable.Range(0, sequence.Count), sequence);

        Assert.NotNull(completed);
        Assert.Equal(ResponseStatus.Completed, completed.Status);
        Assert.StartsWith("resp_", completed.Id);
        Assert.Null(completed.IncompleteStatusDetails);
        Assert.Equal(text.ToString(), completed.GetOutputText());
        Assert.Equal(7, completed.Usage.OutputTokenCount);
        Assert.Equal(MockApi.PromptTokens(Prompt), completed.Usage.InputTokenCount);
        Assert.Equal(completed.Usage.InputTokenCount + 7, completed.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task StreamedResponse_StoppedByMaxOutputTokens_EndsIncompleteWithTheReason()
    {
        var session = MockApi.NewSessionId();
        var deltas = 0;
        ResponseResult? incomplete = null;
        var completedSeen = false;
        await foreach (var update in await NewClient(session, completionTokens: 10).CreateResponseStreamingAsync(Request(stream: true, maxOutputTokens: 3)))
        {
            deltas += update is StreamingResponseOutputTextDeltaUpdate ? 1 : 0;
            completedSeen |= update is StreamingResponseCompletedUpdate;
            incomplete = (update as StreamingResponseIncompleteUpdate)?.Response ?? incomplete;
        }

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((3, 3, true), (entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(3, deltas);
        Assert.False(completedSeen);
        Assert.NotNull(incomplete);
        Assert.Equal(ResponseStatus.Incomplete, incomplete.Status);
        Assert.Equal(ResponseIncompleteStatusReason.MaxOutputTokens, incomplete.IncompleteStatusDetails.Reason);
        Assert.Equal(3, incomplete.MaxOutputTokenCount);
        Assert.Equal(3, incomplete.Usage.OutputTokenCount);
        Assert.Equal(MockApi.ExpectedText(Prompt, 3), incomplete.GetOutputText());
    }

    [Fact]
    public async Task NonStreamedResponse_OpenAiSdk_ParsesTheResponseObject()
    {
        var session = MockApi.NewSessionId();
        ResponseResult response = await NewClient(session, completionTokens: 5).CreateResponseAsync(Request(stream: false));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((false, 5, true), (entry.Stream, entry.TokensSent, entry.Completed));
        Assert.Equal(ResponseStatus.Completed, response.Status);
        Assert.Equal("gpt-mock", response.Model);
        Assert.Equal(MockApi.ExpectedText(Prompt, 5), response.GetOutputText());
        Assert.Equal(5, response.Usage.OutputTokenCount);
        var message = Assert.IsAssignableFrom<MessageResponseItem>(Assert.Single(response.OutputItems));
        Assert.Equal(MessageRole.Assistant, message.Role);
    }

    [Fact]
    public async Task MalformedBody_Returns400_InOpenAisErrorShape()
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);
        using var response = await client.SendAsync(MockApi.Post("/v1/responses", """{"model":"gpt-mock","input":42}""", sessionId: null));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = MockApi.Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("'input'", error.GetProperty("message").GetString());
    }
}
