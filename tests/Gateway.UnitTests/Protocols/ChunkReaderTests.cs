using System.Text;
using Gateway.Protocols;
using Gateway.Tokens;

namespace Gateway.Tests.Protocols;

/// <summary>Each API's reader over streams as its servers write them, cut anywhere, and over hostile bytes.</summary>
public sealed class ChunkReaderTests
{
    private const string Sse = "text/event-stream";

    private static readonly string AnthropicStream =
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n" +
        "event: ping\ndata: {\"type\": \"ping\"}\n\n" +
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n" +
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" world\"}}\n\n" +
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}\n\n" +
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n" +
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n" +
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    private static readonly string ResponsesStream =
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"model\":\"gpt-x\",\"output\":[],\"usage\":null}}\n\n" +
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"Hi\"}\n\n" +
        "event: response.reasoning_text.delta\ndata: {\"type\":\"response.reasoning_text.delta\",\"sequence_number\":2,\"delta\":\"think\"}\n\n" +
        "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":3,\"text\":\"Hi\"}\n\n" +
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":4,\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"output\":[{\"content\":[{\"text\":\"Hi\"}]}],\"usage\":{\"input_tokens\":9,\"output_tokens\":5}}}\n\n";

    private static readonly string GeminiStream =
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-x\"}\r\n\r\n" +
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}],\"role\":\"model\"}}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":3}}\r\n\r\n" +
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"c\"}],\"role\":\"model\"},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":4,\"candidatesTokenCount\":3,\"thoughtsTokenCount\":3}}\r\n\r\n";

    private static readonly string TgiStream =
        "data:{\"index\":1,\"token\":{\"id\":5,\"text\":\"a\",\"logprob\":-1,\"special\":false},\"generated_text\":null,\"details\":null}\n\n" +
        "data:{\"index\":2,\"token\":{\"id\":6,\"text\":\"\",\"logprob\":-1,\"special\":false},\"generated_text\":null,\"details\":null}\n\n" +
        "data:{\"index\":3,\"token\":{\"id\":2,\"text\":\"</s>\",\"logprob\":-1,\"special\":true},\"generated_text\":\"a\",\"details\":{\"finish_reason\":\"eos_token\",\"generated_tokens\":3}}\n\n";

    private static readonly string LlamaCppStream =
        "data: {\"index\":0,\"content\":\"a\",\"stop\":false,\"tokens_predicted\":1}\n\n" +
        "data: {\"index\":0,\"content\":\"b\",\"stop\":false,\"tokens_predicted\":2}\n\n" +
        "data: {\"index\":0,\"content\":\"\",\"stop\":true,\"model\":\"tiny\",\"tokens_predicted\":2,\"tokens_evaluated\":6}\n\n";

    [Fact]
    public void AnthropicStream_SplitAnywhere_TakesTheRunningOutputTotalAndTheEnd()
    {
        var whole = RunEverySplit(ApiAdapters.Messages, AnthropicStream);

        Assert.Equal((3, 7L, 25L, true, "claude-x"), (whole.ContentChunks, whole.ReportedCompletionTokens, whole.ReportedPromptTokens, whole.SawEnd, whole.ResponseModel));
        Assert.Equal(7, whole.Tokens);
    }

    [Fact]
    public void AnthropicStream_CutBeforeMessageDelta_CountsDeltasNotTheStartsPlaceholder()
    {
        var cut = AnthropicStream[..AnthropicStream.IndexOf("event: message_delta", StringComparison.Ordinal)];

        var counted = RunEverySplit(ApiAdapters.Messages, cut);

        Assert.Null(counted.ReportedCompletionTokens); // message_start's output_tokens: 1 is not a count of the answer
        Assert.Equal(3, counted.Tokens);
        Assert.False(counted.SawEnd);
    }

    [Fact]
    public void ResponsesStream_SplitAnywhere_CountsDeltaEventsAndTakesTheFinalUsage()
    {
        var counted = RunEverySplit(ApiAdapters.Responses, ResponsesStream);

        Assert.Equal((2, 5L, 9L, true, "gpt-x"), (counted.ContentChunks, counted.ReportedCompletionTokens, counted.ReportedPromptTokens, counted.SawEnd, counted.ResponseModel));
    }

    [Fact]
    public void GeminiStream_SplitAnywhere_TakesTheLastRunningTotalWithThoughts()
    {
        var counted = RunEverySplit(ApiAdapters.Gemini, GeminiStream);

        Assert.Equal((3, 6L, 4L, true, "gemini-x"), (counted.ContentChunks, counted.ReportedCompletionTokens, counted.ReportedPromptTokens, counted.SawEnd, counted.ResponseModel));
    }

    [Fact]
    public void TgiStream_SplitAnywhere_CountsEveryNonSpecialTokenEventAndTakesGeneratedTokens()
    {
        var counted = RunEverySplit(ApiAdapters.Tgi, TgiStream);

        Assert.Equal((2, 3L, true), (counted.ContentChunks, counted.ReportedCompletionTokens, counted.SawEnd));
    }

    [Fact]
    public void LlamaCppStream_SplitAnywhere_TakesTokensPredictedAndTheStop()
    {
        var counted = RunEverySplit(ApiAdapters.LlamaCpp, LlamaCppStream);

        Assert.Equal((2, 2L, 6L, true, "tiny"), (counted.ContentChunks, counted.ReportedCompletionTokens, counted.ReportedPromptTokens, counted.SawEnd, counted.ResponseModel));
    }

    [Theory]
    [InlineData("messages", "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n")]
    [InlineData("responses", "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\"}}\n\n")]
    [InlineData("gemini", "data: {\"error\":{\"code\":500,\"message\":\"x\",\"status\":\"INTERNAL\"}}\r\n\r\n")]
    [InlineData("tgi", "data:{\"error\":\"x\",\"error_type\":\"generation\"}\n\n")]
    [InlineData("llamacpp", "data: {\"error\":{\"code\":500,\"message\":\"x\",\"type\":\"server_error\"}}\n\n")]
    [InlineData("chat_completions", "data: {\"error\":{\"message\":\"x\",\"type\":\"server_error\"}}\n\n")]
    public void UpstreamErrorEvent_Read_IsAnErrorNotAnEnd(string api, string stream)
    {
        var counted = RunEverySplit(Adapter(api), stream);

        Assert.True(counted.SawError);
        Assert.False(counted.SawEnd);
    }

    public static TheoryData<string, string> HostileEvents()
    {
        var deep = new string('[', 5000);
        var hostile = new[]
        {
            "data: {\"type\":\"content_block_delta\",\"delta\":" + deep + "\n\n",
            "data: {\"candidates\":" + deep + "\n\n",
            "data: {\"usage\":{\"output_tokens\":-5,\"input_tokens\":\"many\"},\"usageMetadata\":{\"candidatesTokenCount\":1e400}}\n\n",
            "data: {\"tokens_predicted\":99999999999999999999999,\"details\":[],\"token\":7,\"delta\":{\"text\":{}}}\n\n",
            "data: {\"type\":\"response.output_text.delta\",\"delta\":\"\\ud800\"}\n\n",
            "data: {\"candidates\":[{\"content\":{\"parts\":\"x\"}},7,null]}\n\n",
            "data: {not json at all\n\n",
            "data: {\"delta\":\"" + new string('x', 2 * 1024 * 1024) + "\"}\n\n",
            "event: " + new string('e', 10_000) + "\ndata: {\"type\":\"message_stop\"}\n\n",
        };
        var data = new TheoryData<string, string>();
        foreach (var api in new[] { "chat_completions", "responses", "messages", "gemini", "tgi", "llamacpp", "ollama" })
        {
            for (var i = 0; i < hostile.Length; i++)
            {
                data.Add(api, hostile[i]);
            }
        }

        return data;
    }

    /// <summary>Whatever an upstream sends, a reader neither throws nor counts backwards, and the next
    /// good event still counts.</summary>
    [Theory]
    [MemberData(nameof(HostileEvents))]
    public void HostileEvent_Read_NeitherThrowsNorPoisonsTheCount(string api, string hostile)
    {
        var adapter = Adapter(api);
        var good = api switch
        {
            "messages" => "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"ok\"}}\n\n",
            "responses" => "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"ok\"}\n\n",
            "gemini" => "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"ok\"}]}}]}\r\n\r\n",
            "tgi" => "data:{\"token\":{\"text\":\"ok\",\"special\":false}}\n\n",
            "llamacpp" => "data: {\"content\":\"ok\",\"stop\":false}\n\n",
            "ollama" => "{\"message\":{\"content\":\"ok\"},\"done\":false}\n",
            _ => "data: {\"choices\":[{\"delta\":{\"content\":\"ok\"}}]}\n\n",
        };
        var contentType = api == "ollama" ? "application/x-ndjson" : Sse;
        using var counter = adapter.CreateCounter(contentType, new ContentText());

        var before = Observe(counter, hostile);
        Observe(counter, good);
        counter.Complete();

        Assert.True(before.Tokens >= 0 && counter.Tokens >= 0);
        Assert.True(counter.ContentChunks >= 1, $"{api}: the good event after the hostile one was not counted");
        Assert.Contains("ok", Encoding.UTF8.GetString(counter.Text!.Utf8), StringComparison.Ordinal);
    }

    private static ApiAdapter Adapter(string api) => api switch
    {
        "messages" => ApiAdapters.Messages,
        "responses" => ApiAdapters.Responses,
        "gemini" => ApiAdapters.Gemini,
        "tgi" => ApiAdapters.Tgi,
        "llamacpp" => ApiAdapters.LlamaCpp,
        "ollama" => ApiAdapters.OllamaChat,
        _ => ApiAdapters.ChatCompletions,
    };

    private static (long Tokens, long Chunks) Observe(TokenCounter counter, string text)
    {
        counter.Observe(Encoding.UTF8.GetBytes(text));
        return (counter.Tokens, counter.ContentChunks);
    }

    private sealed record Counted(long ContentChunks, long? ReportedCompletionTokens, long? ReportedPromptTokens, bool SawEnd, bool SawError, string? ResponseModel, long Tokens);

    /// <summary>Feeds the stream in two writes split at every byte; every split must count the same.</summary>
    private static Counted RunEverySplit(ApiAdapter adapter, string stream)
    {
        var bytes = Encoding.UTF8.GetBytes(stream);
        Counted? first = null;
        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            using var counter = adapter.CreateCounter(Sse, null);
            counter.Observe(bytes.AsSpan(0, cut));
            counter.Observe(bytes.AsSpan(cut));
            counter.Complete();
            var counted = new Counted(counter.ContentChunks, counter.ReportedCompletionTokens, counter.ReportedPromptTokens, counter.SawEnd, counter.SawError, counter.ResponseModel, counter.Tokens);
            first ??= counted;
            Assert.Equal(first, counted);
        }

        return first!;
    }
}
