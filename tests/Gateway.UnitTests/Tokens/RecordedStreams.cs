using Gateway.Protocols;
using System.Text;
using Gateway.Tokens;

namespace Gateway.Tests.Tokens;

/// <summary>Builds the exact bytes LLM servers send, and runs them through a counter.</summary>
internal static class RecordedStreams
{
    public const string Sse = "text/event-stream";
    public const string Ndjson = "application/x-ndjson";
    public const string Json = "application/json";

    /// <summary>Content pieces with JSON escapes and multi-byte UTF-8, so splits land inside both.</summary>
    public static readonly string[] Words = ["Hello", ",", " caf\u00e9", " \"quoted\"", "\n", " \u00fcber", " \U0001F600", " end"];

    /// <summary>Each payload as <c>data: payload</c> followed by a blank line.</summary>
    public static byte[] SseEvents(string newline, params IEnumerable<string> payloads)
    {
        var builder = new StringBuilder();
        foreach (var payload in payloads)
        {
            builder.Append("data: ").Append(payload).Append(newline).Append(newline);
        }

        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    public static byte[] Lines(params IEnumerable<string> lines)
    {
        var builder = new StringBuilder();
        foreach (var line in lines)
        {
            builder.Append(line).Append('\n');
        }

        return Encoding.UTF8.GetBytes(builder.ToString());
    }

    /// <summary>A JSON string literal, escaped the way servers escape (\n, \", \uXXXX for non-ASCII).</summary>
    public static string Str(string value)
    {
        var builder = new StringBuilder("\"");
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': builder.Append("\\\""); break;
                case '\\': builder.Append("\\\\"); break;
                case '\n': builder.Append("\\n"); break;
                case < ' ' or > '~': builder.Append("\\u").Append(((int)c).ToString("x4", System.Globalization.CultureInfo.InvariantCulture)); break;
                default: builder.Append(c); break;
            }
        }

        return builder.Append('"').ToString();
    }

    public static string ChatChunk(string delta, string finishReason = "null") =>
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\","
        + "\"choices\":[{\"index\":0,\"delta\":" + delta + ",\"logprobs\":null,\"finish_reason\":" + finishReason + "}]}";

    public static string ChatUsage(long prompt, long completion) =>
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\","
        + "\"choices\":[],\"usage\":{\"prompt_tokens\":" + prompt + ",\"total_tokens\":" + (prompt + completion)
        + ",\"completion_tokens\":" + completion + "}}";

    /// <summary>vLLM's OpenAI chat stream: role chunk with empty content, one chunk per word, a finish chunk, optionally usage, [DONE].</summary>
    public static List<string> VllmChat(IEnumerable<string> words, (long Prompt, long Completion)? usage)
    {
        var payloads = new List<string> { ChatChunk("{\"role\":\"assistant\",\"content\":\"\"}") };
        foreach (var word in words)
        {
            payloads.Add(ChatChunk("{\"content\":" + Str(word) + "}"));
        }

        payloads.Add(ChatChunk("{}", "\"stop\""));
        if (usage is { } u)
        {
            payloads.Add(ChatUsage(u.Prompt, u.Completion));
        }

        payloads.Add("[DONE]");
        return payloads;
    }

    public static string Utf8Text(TokenCounter counter) =>
        counter.Text is null ? "" : Encoding.UTF8.GetString(counter.Text.Utf8);

    public static Counted Run(string contentType, params IEnumerable<byte[]> writes)
    {
        using var counter = ApiAdapters.Other.CreateCounter(contentType, new ContentText());
        foreach (var write in writes)
        {
            counter.Observe(write);
        }

        counter.Complete();
        return new Counted(counter.ContentChunks, counter.ReportedCompletionTokens, counter.ReportedPromptTokens, counter.Tokens, Utf8Text(counter));
    }

    /// <summary>
    /// Counts <paramref name="bytes"/> whole, then split in two at every byte boundary, then one byte at
    /// a time; every way must give the same result. Returns the whole result for the caller's expectations.
    /// </summary>
    public static Counted RunEverySplit(string contentType, byte[] bytes)
    {
        var whole = Run(contentType, bytes);
        for (var i = 0; i <= bytes.Length; i++)
        {
            var split = Run(contentType, bytes[..i], bytes[i..]);
            if (split != whole)
            {
                Assert.Fail($"Split at byte {i} of {bytes.Length}: {split}, whole: {whole}");
            }
        }

        var oneByte = Run(contentType, bytes.Select(b => new[] { b }));
        Assert.Equal(whole, oneByte);
        return whole;
    }
}

internal sealed record Counted(long ContentChunks, long? ReportedCompletionTokens, long? ReportedPromptTokens, long Tokens, string Text);
