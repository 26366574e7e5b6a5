using System.Buffers;
using System.Text;
using System.Text.Json;
using MockLlm.Generation;

namespace MockLlm.Protocols;

internal enum OpenAiFlavor
{
    /// <summary><c>/v1/chat/completions</c>: <c>choices[0].delta.content</c> / <c>message.content</c>.</summary>
    Chat,

    /// <summary><c>/v1/completions</c>: <c>choices[0].text</c>.</summary>
    Completion,
}

/// <summary>SSE in OpenAI's shape: role chunk (chat), one chunk per token, finish chunk, optional usage chunk, [DONE].</summary>
internal sealed class OpenAiStreamWriter : SseWriter
{
    private readonly GenerationContext _generation;
    private readonly OpenAiFlavor _flavor;
    private readonly string _head;
    private readonly byte[] _tokenPrefix;
    private readonly byte[] _tokenSuffix;

    public OpenAiStreamWriter(GenerationContext generation, OpenAiFlavor flavor)
    {
        _generation = generation;
        _flavor = flavor;
        _head = OpenAiShapes.Head(generation, flavor, streaming: true);

        // Built once per request so each token is three span copies; tokens are JSON-safe ASCII.
        _tokenPrefix = Encoding.UTF8.GetBytes(flavor == OpenAiFlavor.Chat
            ? $"data: {_head}\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\""
            : $"data: {_head}\"choices\":[{{\"index\":0,\"text\":\"");
        _tokenSuffix = Encoding.UTF8.GetBytes(flavor == OpenAiFlavor.Chat
            ? "\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n"
            : "\",\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }

    public override void WriteStart(IBufferWriter<byte> output)
    {
        if (_flavor == OpenAiFlavor.Chat)
        {
            WriteEvent(output, $"{_head}\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}");
        }
    }

    public override void WriteToken(IBufferWriter<byte> output, ReadOnlySpan<byte> token)
    {
        output.Write(_tokenPrefix);
        output.Write(token);
        output.Write(_tokenSuffix);
    }

    public override void WriteEnd(IBufferWriter<byte> output, in GenerationStats stats)
    {
        var finishReason = OpenAiShapes.FinishReason(_generation);
        WriteEvent(output, _flavor == OpenAiFlavor.Chat
            ? $"{_head}\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{finishReason}\"}}]}}"
            : $"{_head}\"choices\":[{{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"{finishReason}\"}}]}}");

        if (_generation.Request.IncludeUsage)
        {
            var prompt = _generation.Script.PromptTokens;
            WriteEvent(output, $"{_head}\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{stats.TokensSent},\"total_tokens\":{prompt + stats.TokensSent}}}}}");
        }

        output.Write("data: [DONE]\n\n"u8);
    }

    private static void WriteEvent(IBufferWriter<byte> output, string json)
    {
        output.Write("data: "u8);
        output.Write(Encoding.UTF8.GetBytes(json));
        output.Write("\n\n"u8);
    }
}

/// <summary>A single <c>chat.completion</c> / <c>text_completion</c> body, written once generation ends.</summary>
internal sealed class OpenAiResponseWriter(GenerationContext generation, OpenAiFlavor flavor) : WholeBodyWriter(generation)
{
    protected override void WriteBody(IBufferWriter<byte> output, in GenerationStats stats, ReadOnlySpan<byte> text)
    {
        var prompt = Generation.Script.PromptTokens;

        using var json = new Utf8JsonWriter(output);
        json.WriteStartObject();
        json.WriteString("id", OpenAiShapes.Id(Generation, flavor));
        json.WriteString("object", flavor == OpenAiFlavor.Chat ? "chat.completion" : "text_completion");
        json.WriteNumber("created", Generation.CreatedUnixSeconds);
        json.WriteString("model", Generation.Model);
        json.WriteStartArray("choices");
        json.WriteStartObject();
        json.WriteNumber("index", 0);
        if (flavor == OpenAiFlavor.Chat)
        {
            json.WriteStartObject("message");
            json.WriteString("role", "assistant");
            json.WriteString("content", text);
            json.WriteNull("refusal");
            json.WriteEndObject();
        }
        else
        {
            json.WriteString("text", text);
        }

        json.WriteNull("logprobs");
        json.WriteString("finish_reason", OpenAiShapes.FinishReason(Generation));
        json.WriteEndObject();
        json.WriteEndArray();
        json.WriteStartObject("usage");
        json.WriteNumber("prompt_tokens", prompt);
        json.WriteNumber("completion_tokens", stats.TokensSent);
        json.WriteNumber("total_tokens", prompt + stats.TokensSent);
        json.WriteEndObject();
        json.WriteEndObject();
    }
}

internal static class OpenAiShapes
{
    public static string Id(GenerationContext generation, OpenAiFlavor flavor) =>
        (flavor == OpenAiFlavor.Chat ? "chatcmpl-" : "cmpl-") + generation.Id;

    /// <summary>The fields every chunk starts with, up to and including the comma before <c>choices</c>.</summary>
    public static string Head(GenerationContext generation, OpenAiFlavor flavor, bool streaming)
    {
        var type = flavor == OpenAiFlavor.Chat
            ? streaming ? "chat.completion.chunk" : "chat.completion"
            : "text_completion";
        var model = JsonEncodedText.Encode(generation.Model).ToString();
        return $"{{\"id\":\"{Id(generation, flavor)}\",\"object\":\"{type}\",\"created\":{generation.CreatedUnixSeconds},\"model\":\"{model}\",";
    }

    /// <summary>Only reached when every planned token was sent.</summary>
    public static string FinishReason(GenerationContext generation) => generation.StoppedByCap ? "length" : "stop";
}
