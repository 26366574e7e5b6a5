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

    public override RequestFacts FromBody(BodyScanner body) =>
        new(body.Model, body.Stream,
            body.Number(BodyField.MaxCompletionTokens) ?? body.Number(BodyField.MaxTokens) ?? body.Number(BodyField.OptionsNumPredict));

    protected override void WriteError(Utf8JsonWriter json, EndNotice notice) => OpenAiErrors.Write(json, notice);
}
