using System.ClientModel;
using System.ClientModel.Primitives;
using Anthropic;
using Anthropic.Core;
using Anthropic.Models.Messages;
using Gateway.Tests.Infrastructure;
using OllamaSharp;
using OpenAI.Responses;

namespace Gateway.Tests.Protocols;

/// <summary>
/// The official SDKs as a user's program runs them through the gateway: when a stream is superseded,
/// stopped, or cut by its upstream, the SDK raises an error that names the reason, instead of taking
/// the cut-off answer for a whole one (or, where an SDK yields errors as items, its last item is the
/// API's error naming the reason); the mock's ledger shows the upstream stopped.
/// </summary>
#pragma warning disable OPENAI001 // the Responses client is marked experimental in OpenAI 2.15
public sealed class SdkInterruptionTests
{
    public static TheoryData<string> Reasons => ["superseded", "stopped", "upstream_reset"];

    [Theory]
    [MemberData(nameof(Reasons))]
    public async Task AnthropicSdk_StreamInterrupted_RaisesAnErrorNamingTheReason(string reason)
    {
        await using var stack = await ApiStack.StartAsync("sdk", ApiCase.Messages);
        using var client = new AnthropicClient(new ClientOptions
        {
            BaseUrl = stack.Stack.Gateway.BaseAddress.ToString().TrimEnd('/'),
            ApiKey = "sk-ant-test",
            MaxRetries = 0,
            Timeout = Wait.Timeout,
            ExtraHeaders = Headers(reason),
        });
        var request = new MessageCreateParams { Model = "claude-mock", MaxTokens = 200, Messages = [new UserMessageParam("a long story")] };

        var error = await InterruptAsync(stack, reason, "Bearer sk-ant-test", async () =>
        {
            await foreach (var _ in client.Messages.CreateStreaming(request))
            {
            }
        });

        Assert.Contains(ApiStack.Notice(reason).Message, error.ToString(), StringComparison.Ordinal);
    }

    /// <summary>The OpenAI .NET SDK yields the Responses API's <c>error</c> event as its last update (the
    /// Python SDK raises on the same event, which also carries an <c>error</c> object).</summary>
    [Theory]
    [MemberData(nameof(Reasons))]
    public async Task OpenAiResponsesSdk_StreamInterrupted_EndsWithAnErrorUpdateNamingTheReason(string reason)
    {
        await using var stack = await ApiStack.StartAsync("sdk", ApiCase.Responses);
        var options = new ResponsesClientOptions { Endpoint = new Uri(stack.Stack.Gateway.BaseAddress, "v1/"), NetworkTimeout = Wait.Timeout, RetryPolicy = new ClientRetryPolicy(0) };
        options.AddPolicy(new HeaderPolicy(Headers(reason)), PipelinePosition.PerCall);
        var client = new ResponsesClient(new ApiKeyCredential("sk-test"), options);
        var request = new CreateResponseOptions("gpt-mock", [ResponseItem.CreateUserMessageItem("a long story")]) { StreamingEnabled = true, MaxOutputTokenCount = 200 };
        var updates = new List<StreamingResponseUpdate>();

        var error = await InterruptAsync(stack, reason, "Bearer sk-test", async () =>
        {
            await foreach (var update in await client.CreateResponseStreamingAsync(request))
            {
                updates.Add(update);
            }

            throw new InvalidOperationException("ended");
        });

        Assert.Equal("ended", error.Message);
        Assert.Contains(updates, u => u is StreamingResponseOutputTextDeltaUpdate);
        Assert.DoesNotContain(updates, u => u is StreamingResponseCompletedUpdate or StreamingResponseIncompleteUpdate);
        var failed = Assert.IsType<StreamingResponseErrorUpdate>(updates[^1]);
        Assert.Equal(ApiStack.Notice(reason).Code, failed.Code);
        Assert.Equal(ApiStack.Notice(reason).Message, failed.Message);
    }

    /// <summary>
    /// OllamaSharp 5.5.2's <c>ChatAsync</c> does not look for Ollama's <c>{"error": …}</c> line (its pull and
    /// create calls do; ollama-python and ollama-js raise on it): what its user can see is that the
    /// stream ends without the <c>done</c> item that every whole answer has.
    /// </summary>
    [Theory]
    [MemberData(nameof(Reasons))]
    public async Task OllamaSharp_StreamInterrupted_EndsWithoutTheDoneItem(string reason)
    {
        await using var stack = await ApiStack.StartAsync("sdk", ApiCase.OllamaChat);
        using var http = new HttpClient { BaseAddress = stack.Stack.Gateway.BaseAddress, Timeout = Wait.Timeout };
        foreach (var (name, value) in Headers(reason))
        {
            http.DefaultRequestHeaders.Add(name, value);
        }

        using var client = new OllamaApiClient(http, "llama-mock");
        var request = new OllamaSharp.Models.Chat.ChatRequest
        {
            Model = "llama-mock",
            Messages = [new OllamaSharp.Models.Chat.Message(OllamaSharp.Models.Chat.ChatRole.User, "a long story")],
            Options = new OllamaSharp.Models.RequestOptions { NumPredict = 200 },
        };
        var items = new List<OllamaSharp.Models.Chat.ChatResponseStream?>();

        var error = await InterruptAsync(stack, reason, null, async () =>
        {
            await foreach (var item in client.ChatAsync(request))
            {
                items.Add(item);
            }

            throw new InvalidOperationException("ended");
        });

        Assert.Equal("ended", error.Message);
        Assert.True(items.Count >= 3);
        Assert.DoesNotContain(items, i => i is OllamaSharp.Models.Chat.ChatDoneResponseStream || i?.Done == true);
        Assert.Null(items[^1]?.Message); // the error line, read as an item without a message
    }

    private static Dictionary<string, string> Headers(string reason)
    {
        var headers = new Dictionary<string, string>(ApiStack.Slow) { ["X-Session-Id"] = "sdk" };
        if (reason == "upstream_reset")
        {
            headers["X-Mock-Fail-After"] = "4";
        }

        return headers;
    }

    /// <summary>Runs the SDK's stream, interrupts it once tokens flow (as the same tenant: the credential
    /// the SDK sends), and returns what the SDK raised.</summary>
    private static async Task<Exception> InterruptAsync(ApiStack stack, string reason, string? authorization, Func<Task> stream)
    {
        var running = Task.Run(stream);
        await stack.Stack.WaitForEntryAsync("sdk", e => e.TokensSent >= 3);
        switch (reason)
        {
            case "superseded":
                var request = ApiCase.ChatCompletions.Request("mock-1", "short", 3, "sdk");
                if (authorization is not null)
                {
                    request.Headers.Add("Authorization", authorization);
                }

                using (var newer = await stack.Client.SendAsync(request))
                {
                    await newer.Content.ReadAsByteArrayAsync();
                }

                break;
            case "stopped":
                var cancel = new HttpRequestMessage(HttpMethod.Post, "/v1/sessions/sdk/cancel");
                if (authorization is not null)
                {
                    cancel.Headers.Add("Authorization", authorization);
                }

                using (var stop = await stack.Client.SendAsync(cancel))
                {
                    Assert.Equal(200, (int)stop.StatusCode);
                }

                break;
        }

        var error = await Record.ExceptionAsync(() => running.WaitAsync(Wait.Timeout));
        Assert.True(error is not null, $"the SDK took the {reason} stream for a whole answer");
        Assert.IsNotType<TimeoutException>(error);
        var entry = await stack.Stack.WaitForEntryAsync("sdk", e => e.EndedAt is not null);
        Assert.True(entry.Cancelled || entry.Failed, entry.ToString());
        return error;
    }
}
