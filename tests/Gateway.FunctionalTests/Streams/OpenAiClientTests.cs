using System.ClientModel;
using System.ClientModel.Primitives;
using Gateway.Tests.Infrastructure;
using OpenAI;
using OpenAI.Chat;

namespace Gateway.Tests.Streams;

/// <summary>The official OpenAI .NET client, pointed at the gateway, as a real user's code would be.</summary>
public sealed class OpenAiClientTests
{
    private static ChatClient NewClient(Uri gateway, string sessionId, string? tokensPerSecond = null)
    {
        var options = new OpenAIClientOptions { Endpoint = new Uri(gateway, "v1/"), NetworkTimeout = Wait.Timeout, RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(new HeaderPolicy("X-Session-Id", sessionId), PipelinePosition.PerCall);
        if (tokensPerSecond is not null)
        {
            options.AddPolicy(new HeaderPolicy("X-Mock-Tokens-Per-Second", tokensPerSecond), PipelinePosition.PerCall);
        }

        return new ChatClient("mock-1", new ApiKeyCredential("sk-test"), options);
    }

    /// <summary>
    /// Pins what OpenAI .NET 2.15 does with the gateway's in-stream error event: it does not throw (its
    /// SSE reader deserialises every event as an update and never looks for an <c>error</c> field,
    /// unlike the Python and Node SDKs, which raise). The superseded call ends without a finish reason,
    /// and the error survives on the last update's unknown properties, which
    /// <c>ModelReaderWriter.Write(update)</c> returns.
    /// </summary>
    [Fact]
    public async Task SupersededStreamingCall_OpenAiDotnet_EndsWithoutFinishReason_LastUpdateCarriesTheError()
    {
        await using var stack = await Stack.StartAsync();
        var old = NewClient(stack.Gateway.BaseAddress, "sdk", tokensPerSecond: "20");
        var updates = new List<StreamingChatCompletionUpdate>();
        var firstToken = new TaskCompletionSource();
        var oldCall = Task.Run(async () =>
        {
            await foreach (var update in old.CompleteChatStreamingAsync(
                [new UserChatMessage("tell me a long story")], new ChatCompletionOptions { MaxOutputTokenCount = 400 }))
            {
                updates.Add(update);
                if (update.ContentUpdate.Count > 0 && update.ContentUpdate[0].Text.Length > 0)
                {
                    firstToken.TrySetResult();
                }
            }
        });
        await firstToken.Task.WaitAsync(Wait.Timeout);

        var newer = NewClient(stack.Gateway.BaseAddress, "sdk");
        ChatFinishReason? newerFinish = null;
        await foreach (var update in newer.CompleteChatStreamingAsync(
            [new UserChatMessage("never mind")], new ChatCompletionOptions { MaxOutputTokenCount = 5 }))
        {
            newerFinish ??= update.FinishReason;
        }

        await oldCall.WaitAsync(Wait.Timeout); // completes without an exception: what this SDK does
        Assert.Equal(ChatFinishReason.Length, newerFinish);
        Assert.All(updates, u => Assert.Null(u.FinishReason));
        var last = ModelReaderWriter.Write(updates[^1]).ToString();
        Assert.Contains("request_superseded", last);
        Assert.Contains("superseded by a newer request", last);

        var oldEntry = await stack.WaitForEntryAsync("sdk", e => e.EndedAt is not null, index: 0);
        Assert.True(oldEntry.Cancelled);
        Assert.True(oldEntry.TokensSent < oldEntry.TokensPlanned);
    }
}
