using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// OpenAI Chat Completions (<c>/v1/chat/completions</c>) and Completions (<c>/v1/completions</c>), as
/// vLLM, llama.cpp, TGI, Ollama and hosted APIs serve them: <c>data:</c> chunks whose
/// <c>choices[].delta</c> (or <c>text</c>) carry tokens, an optional final <c>usage</c>, a
/// <c>finish_reason</c> and <c>[DONE]</c>. An interrupted client gets <c>data: {"error": {...}}</c>,
/// which the OpenAI SDKs raise.
/// </summary>
internal sealed class ChatCompletionsAdapter(bool chat)
    : ApiAdapter(chat ? Api.ChatCompletions : Api.Completions, chat ? "chat_completions" : "completions", chat ? "chat" : "text_completion")
{
    public override bool Matches(string path) =>
        chat ? EndsWith(path, "/chat/completions") : EndsWith(path, "/completions") && !EndsWith(path, "/chat/completions");

    public override ChunkReader Reader => CompatibleChunkReader.Instance;

    /// <summary><c>max_completion_tokens</c> replaced <c>max_tokens</c>; servers take it first.</summary>
    public override RequestFacts FromBody(BodyScanner body) =>
        new(body.Model, body.Stream, Cap(body, BodyField.MaxCompletionTokens, BodyField.MaxTokens));

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice) => OpenAiErrors.Write(json, notice);
}
