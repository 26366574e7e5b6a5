using Gateway.Protocols;
using System.Text;
using Gateway.Tokens;
using static Gateway.Tests.Tokens.RecordedStreams;

namespace Gateway.Tests.Tokens;

public sealed class TokenCounterTests
{
    private static readonly string AllWords = string.Concat(Words);

    [Fact]
    public void VllmChatWithUsage_SplitAnywhere_CountsContentChunksAndTakesReportedUsage()
    {
        var bytes = SseEvents("\n", VllmChat(Words, usage: (Prompt: 17, Completion: 11)));

        var counted = RunEverySplit(Sse, bytes);

        Assert.Equal(Words.Length, counted.ContentChunks); // the role chunk's empty content is not a token
        Assert.Equal(11, counted.ReportedCompletionTokens);
        Assert.Equal(17, counted.ReportedPromptTokens);
        Assert.Equal(11, counted.Tokens);
        Assert.Equal(AllWords, counted.Text);
    }

    [Fact]
    public void VllmChatWithoutUsage_SplitAnywhere_TokensAreContentChunks()
    {
        var bytes = SseEvents("\n", VllmChat(Words, usage: null));

        var counted = RunEverySplit(Sse, bytes);

        Assert.Null(counted.ReportedCompletionTokens);
        Assert.Null(counted.ReportedPromptTokens);
        Assert.Equal(Words.Length, counted.Tokens);
    }

    [Fact]
    public void ReasoningAndToolCallChunks_SplitAnywhere_CountAsContent()
    {
        var payloads = new List<string>
        {
            ChatChunk("{\"role\":\"assistant\",\"content\":null}"),
            ChatChunk("{\"reasoning_content\":\"The user wants\"}"),
            ChatChunk("{\"reasoning_content\":\" the weather.\"}"),
            ChatChunk("{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}"),
            ChatChunk("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"loc\"}}]}"),
            ChatChunk("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ation\\\": \\\"Paris\\\"}\"}}]}"),
            ChatChunk("{}", "\"tool_calls\""),
            "[DONE]",
        };

        var counted = RunEverySplit(Sse, SseEvents("\n", payloads));

        // 2 reasoning chunks, the chunk naming the function, 2 argument fragments.
        Assert.Equal(5, counted.ContentChunks);
        Assert.Equal(5, counted.Tokens);
        Assert.Equal("The user wants the weather.get_weather{\"location\": \"Paris\"}", counted.Text);
    }

    [Fact]
    public void OpenAiCompletionsStream_SplitAnywhere_CountsChoiceText()
    {
        var payloads = Words
            .Select(w => "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":" + Str(w) + ",\"logprobs\":null,\"finish_reason\":null}]}")
            .Append("{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"length\"}]}")
            .Append("[DONE]");

        var counted = RunEverySplit(Sse, SseEvents("\n", payloads));

        Assert.Equal(Words.Length, counted.Tokens);
        Assert.Equal(AllWords, counted.Text);
    }

    [Fact]
    public void CrlfLineEndings_SplitAnywhere_CountLikeLf()
    {
        var lf = Run(Sse, SseEvents("\n", VllmChat(Words, usage: (3, 9))));

        var crlf = RunEverySplit(Sse, SseEvents("\r\n", VllmChat(Words, usage: (3, 9))));

        Assert.Equal(lf, crlf);
        Assert.Equal(Words.Length, crlf.ContentChunks);
        Assert.Equal(9, crlf.ReportedCompletionTokens);
    }

    [Fact]
    public void OllamaChatNdjson_SplitAnywhere_CountsMessagesAndTakesEvalCounts()
    {
        var lines = Words
            .Select(w => "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-01T12:00:00.000Z\",\"message\":{\"role\":\"assistant\",\"content\":" + Str(w) + "},\"done\":false}")
            .Append("{\"model\":\"llama3.2\",\"created_at\":\"2024-07-01T12:00:01.000Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done_reason\":\"stop\",\"done\":true,"
                + "\"total_duration\":4883583458,\"load_duration\":1334875,\"prompt_eval_count\":26,\"prompt_eval_duration\":342546000,\"eval_count\":282,\"eval_duration\":4535599000}");

        var counted = RunEverySplit(Ndjson, Lines(lines));

        Assert.Equal(Words.Length, counted.ContentChunks);
        Assert.Equal(282, counted.ReportedCompletionTokens);
        Assert.Equal(26, counted.ReportedPromptTokens);
        Assert.Equal(282, counted.Tokens);
        Assert.Equal(AllWords, counted.Text);
    }

    [Fact]
    public void OllamaGenerateNdjson_SplitAnywhere_CountsResponsesAndTakesEvalCounts()
    {
        var lines = Words
            .Select(w => "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-01T12:00:00.000Z\",\"response\":" + Str(w) + ",\"done\":false}")
            .Append("{\"model\":\"llama3.2\",\"created_at\":\"2024-07-01T12:00:01.000Z\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\","
                + "\"context\":[1,2,3],\"total_duration\":10706818083,\"prompt_eval_count\":26,\"eval_count\":290}");

        var counted = RunEverySplit(Ndjson, Lines(lines));

        Assert.Equal(Words.Length, counted.ContentChunks);
        Assert.Equal(290, counted.ReportedCompletionTokens);
        Assert.Equal(26, counted.ReportedPromptTokens);
    }

    [Fact]
    public void PlainSseDataEvents_SplitAnywhere_CountOnePerEventButNotDone()
    {
        var bytes = SseEvents("\n", ["alpha", "beta", "gamma", "[DONE]"]);

        var counted = RunEverySplit(Sse, bytes);

        Assert.Equal(3, counted.Tokens);
        Assert.Equal("alphabetagamma", counted.Text);
    }

    [Fact]
    public void SseCommentsAndOtherFields_SplitAnywhere_AreNotCounted()
    {
        var bytes = Encoding.UTF8.GetBytes(": keep-alive\n\nevent: message\nid: 7\nretry: 100\ndata: word\n\n");

        var counted = RunEverySplit(Sse, bytes);

        Assert.Equal(1, counted.Tokens);
    }

    [Fact]
    public void TextPlain_EachObserveCall_CountsOneAndEmptyWritesNone()
    {
        using var counter = ApiAdapters.Other.CreateCounter("text/plain; charset=utf-8", new ContentText());

        counter.Observe("Hello"u8);
        counter.Observe([]);
        counter.Observe(" wor"u8);
        counter.Observe("ld\n"u8);
        counter.Complete();

        Assert.IsType<TextTokenCounter>(counter);
        Assert.Equal(3, counter.Tokens);
        Assert.Equal("Hello world\n", Utf8Text(counter));
    }

    [Fact]
    public void OpenAiChatCompletionJson_SplitAnywhere_CountedAtComplete()
    {
        var body = Encoding.UTF8.GetBytes(
            "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
            + "\"message\":{\"role\":\"assistant\",\"content\":" + Str(AllWords) + ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"
            + "\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"total_tokens\":29,\"completion_tokens_details\":{\"reasoning_tokens\":0}}}");

        var counted = RunEverySplit("application/json; charset=utf-8", body);

        Assert.Equal(1, counted.ContentChunks);
        Assert.Equal(10, counted.ReportedCompletionTokens);
        Assert.Equal(19, counted.ReportedPromptTokens);
        Assert.Equal(AllWords, counted.Text);
    }

    [Fact]
    public void OllamaNonStreamJson_SplitAnywhere_CountedAtComplete()
    {
        var body = Encoding.UTF8.GetBytes(
            "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-01T12:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi there\"},"
            + "\"done_reason\":\"stop\",\"done\":true,\"total_duration\":5191566416,\"prompt_eval_count\":26,\"eval_count\":298}");

        var counted = RunEverySplit(Json, body);

        Assert.Equal(298, counted.Tokens);
        Assert.Equal(26, counted.ReportedPromptTokens);
    }

    [Fact]
    public void JsonBody_BeforeComplete_CountsNothing()
    {
        using var counter = ApiAdapters.Other.CreateCounter(Json, null);

        counter.Observe("{\"usage\":{\"completion_tokens\":5}}"u8);
        var before = counter.ReportedCompletionTokens;
        counter.Complete();

        Assert.Null(before);
        Assert.Equal(5, counter.ReportedCompletionTokens);
    }

    [Theory]
    [InlineData(Sse, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}")]
    [InlineData(Sse, "data: a\n\ndata: b")]
    [InlineData(Ndjson, "{\"response\":\"a\",\"done\":false}\n{\"response\":\"b\",\"done\":false}")]
    public void FinalLineWithoutNewline_Complete_CountsIt(string contentType, string stream)
    {
        var bytes = Encoding.UTF8.GetBytes(stream);
        using var counter = ApiAdapters.Other.CreateCounter(contentType, null);

        counter.Observe(bytes);
        var beforeComplete = counter.ContentChunks;
        counter.Complete();

        Assert.Equal(1, beforeComplete);
        Assert.Equal(2, counter.ContentChunks);
        Assert.Equal(2, RunEverySplit(contentType, bytes).Tokens);
    }

    [Theory]
    [InlineData("text/event-stream", typeof(SseTokenCounter))]
    [InlineData("text/event-stream; charset=utf-8", typeof(SseTokenCounter))]
    [InlineData("application/x-ndjson", typeof(NdjsonTokenCounter))]
    [InlineData("application/json", typeof(JsonBodyTokenCounter))]
    [InlineData("application/json; charset=utf-8", typeof(JsonBodyTokenCounter))]
    [InlineData("text/plain", typeof(TextTokenCounter))]
    [InlineData(null, typeof(TextTokenCounter))]
    public void ContentType_For_PicksTheCounter(string? contentType, Type expected)
    {
        using var counter = ApiAdapters.Other.CreateCounter(contentType, null);

        Assert.IsType(expected, counter);
    }
}
