using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// Ollama's native <c>/api/chat</c> and <c>/api/generate</c>: NDJSON lines with <c>message.content</c>
/// or <c>response</c>, a last line with <c>done: true</c> and <c>eval_count</c>; the cap is
/// <c>options.num_predict</c>, and it streams unless told not to. An interrupted client gets Ollama's
/// own <c>{"error": "..."}</c> line.
/// </summary>
internal sealed class OllamaAdapter(bool chat) : ApiAdapter(Api.Ollama, "ollama", chat ? "chat" : "text_completion")
{
    public override bool Matches(string path) => EndsWith(path, chat ? "/api/chat" : "/api/generate");

    public override ChunkReader Reader => CompatibleChunkReader.Instance;

    public override RequestFields RequestFields => Fields;

    public override WholeBodyFields WholeBody => Answer;

    /// <summary>Ollama streams unless told not to.</summary>
    public override RequestFacts FromBody(BodyScanner body) => new(body.Model, body.Stream ?? true, body.Cap);

    private static readonly RequestFields Fields = new("options.num_predict");

    private static readonly WholeBodyFields Answer = new WholeBodyFields()
        .ModelAt("model").CompletionAt("eval_count").PromptAt("prompt_eval_count").EndWhenTrue("done");

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice)
    {
        json.WriteStartObject();
        json.WriteString("error", notice.Message);
        json.WriteEndObject();
    }
}
