using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>
/// Any other request: passed through untouched. When it carries a session key its stream is still
/// counted the OpenAI-compatible way, and a cut ends it as an OpenAI-compatible stream (an error
/// event, an error line, or an abort where the framing has no place for one).
/// </summary>
internal sealed class PassThroughAdapter() : ApiAdapter(Api.Other, "other", "chat")
{
    public override bool Matches(string path) => true;

    public override ChunkReader Reader => CompatibleChunkReader.Instance;

    /// <summary>An unknown API's stream may simply end: that is not taken for a cut.</summary>
    public override bool KnowsEnd => false;

    /// <summary>The OpenAI names, then Ollama's.</summary>
    public override RequestFields RequestFields { get; } = new("max_completion_tokens", "max_tokens", "options.num_predict");

    /// <summary>Every known API's fields: an unknown answer is read as whichever it resembles.</summary>
    public override WholeBodyFields WholeBody => _wholeBody.Value;

    private readonly Lazy<WholeBodyFields> _wholeBody = new(() => WholeBodyFields.Union(ApiAdapters.Known.Select(a => a.WholeBody)));

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice) => OpenAiErrors.Write(json, notice);
}
