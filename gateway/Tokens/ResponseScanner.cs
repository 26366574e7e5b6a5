using System.Text.Json;

namespace Gateway.Tokens;

/// <summary>
/// The counts and end marks of a whole JSON answer (<c>"stream": false</c>) of any API, found as the
/// answer passes to the client, however large, without holding it: <c>usage</c> (OpenAI, Responses,
/// Anthropic), <c>usageMetadata</c> (Gemini), <c>details.generated_tokens</c> (TGI),
/// <c>tokens_predicted</c> (llama.cpp), <c>eval_count</c> (Ollama), and each API's mark of a finished
/// answer. A top-level array (Gemini's stream without <c>alt=sse</c>, some TGI versions) is read as a
/// run of answers, the last count winning.
/// </summary>
internal sealed class ResponseScanner : JsonScanner
{
    private enum Field
    {
        Model, Done, Stop, StopReason, Status, GeneratedText, Error,
        EvalCount, PromptEvalCount, TokensPredicted, TokensEvaluated,
        Usage, UsageMetadata, Details, Choices, Candidates,
        CompletionTokens, PromptTokens, OutputTokens, InputTokens,
        CandidatesTokenCount, ThoughtsTokenCount, PromptTokenCount, GeneratedTokens,
        FinishReason,
    }

    private long? _completion;
    private long? _prompt;
    private long? _candidates;
    private long? _thoughts;

    public ResponseScanner()
        : base(allowTopLevelArray: true)
    {
    }

    /// <summary>The answer's facts: the upstream's counts, its end mark or error, its model.</summary>
    public ChunkFacts Facts { get; private set; }

    /// <summary>Folds the counts into <see cref="Facts"/> once the answer has passed.</summary>
    public ChunkFacts Finish(bool wantModel)
    {
        var facts = Facts;
        facts.CompletionTokens = _completion ?? (_candidates is not null || _thoughts is not null ? (_candidates ?? 0) + (_thoughts ?? 0) : null);
        facts.PromptTokens = _prompt;
        facts.HasContent = facts.End; // without a count, a whole answer is one chunk
        if (!wantModel)
        {
            facts.Model = null;
        }

        return facts;
    }

    protected override int FieldFor(ReadOnlySpan<byte> key)
    {
        var level = Level;
        if (level == 1)
        {
            return key switch
            {
                _ when key.SequenceEqual("model"u8) || key.SequenceEqual("modelVersion"u8) => (int)Field.Model,
                _ when key.SequenceEqual("done"u8) => (int)Field.Done,
                _ when key.SequenceEqual("stop"u8) => (int)Field.Stop,
                _ when key.SequenceEqual("stop_reason"u8) => (int)Field.StopReason,
                _ when key.SequenceEqual("status"u8) => (int)Field.Status,
                _ when key.SequenceEqual("generated_text"u8) => (int)Field.GeneratedText,
                _ when key.SequenceEqual("error"u8) => (int)Field.Error,
                _ when key.SequenceEqual("eval_count"u8) => (int)Field.EvalCount,
                _ when key.SequenceEqual("prompt_eval_count"u8) => (int)Field.PromptEvalCount,
                _ when key.SequenceEqual("tokens_predicted"u8) => (int)Field.TokensPredicted,
                _ when key.SequenceEqual("tokens_evaluated"u8) => (int)Field.TokensEvaluated,
                _ when key.SequenceEqual("usage"u8) => (int)Field.Usage,
                _ when key.SequenceEqual("usageMetadata"u8) => (int)Field.UsageMetadata,
                _ when key.SequenceEqual("details"u8) => (int)Field.Details,
                _ when key.SequenceEqual("choices"u8) => (int)Field.Choices,
                _ when key.SequenceEqual("candidates"u8) => (int)Field.Candidates,
                _ => -1,
            };
        }

        if (level == 2 && !IsArrayAt(Depth - 1))
        {
            return (Field)OpenerAt(Depth - 1) switch
            {
                Field.Usage when key.SequenceEqual("completion_tokens"u8) => (int)Field.CompletionTokens,
                Field.Usage when key.SequenceEqual("output_tokens"u8) => (int)Field.OutputTokens,
                Field.Usage when key.SequenceEqual("prompt_tokens"u8) => (int)Field.PromptTokens,
                Field.Usage when key.SequenceEqual("input_tokens"u8) => (int)Field.InputTokens,
                Field.UsageMetadata when key.SequenceEqual("candidatesTokenCount"u8) => (int)Field.CandidatesTokenCount,
                Field.UsageMetadata when key.SequenceEqual("thoughtsTokenCount"u8) => (int)Field.ThoughtsTokenCount,
                Field.UsageMetadata when key.SequenceEqual("promptTokenCount"u8) => (int)Field.PromptTokenCount,
                Field.Details when key.SequenceEqual("generated_tokens"u8) => (int)Field.GeneratedTokens,
                _ => -1,
            };
        }

        // An object in choices[] or candidates[]: its finish reason.
        if (level == 3 && IsArrayAt(Depth - 2) && (Field)OpenerAt(Depth - 2) is Field.Choices or Field.Candidates
            && (key.SequenceEqual("finish_reason"u8) || key.SequenceEqual("finishReason"u8)))
        {
            return (int)Field.FinishReason;
        }

        return -1;
    }

    protected override void OnContainer(int field)
    {
        if ((Field)field == Field.Error)
        {
            var facts = Facts;
            facts.Error = true;
            Facts = facts;
        }
    }

    protected override void OnValue(int field, ReadOnlySpan<byte> json)
    {
        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read())
            {
                return;
            }

            var facts = Facts;
            switch ((Field)field)
            {
                case Field.Model:
                    if (facts.Model is null && reader.TokenType == JsonTokenType.String)
                    {
                        facts.Model = reader.GetString();
                    }

                    break;
                case Field.Done or Field.Stop:
                    facts.End |= reader.TokenType == JsonTokenType.True;
                    break;
                case Field.StopReason or Field.GeneratedText or Field.FinishReason:
                    facts.End |= reader.TokenType == JsonTokenType.String;
                    break;
                case Field.Status:
                    facts.End |= reader.ValueTextEquals("completed"u8) || reader.ValueTextEquals("incomplete"u8);
                    facts.Error |= reader.ValueTextEquals("failed"u8);
                    break;
                case Field.Error:
                    facts.Error |= reader.TokenType != JsonTokenType.Null;
                    break;
                case Field.EvalCount or Field.TokensPredicted or Field.CompletionTokens or Field.OutputTokens or Field.GeneratedTokens:
                    _completion = ReadCount(ref reader) ?? _completion;
                    break;
                case Field.PromptEvalCount or Field.TokensEvaluated or Field.PromptTokens or Field.InputTokens or Field.PromptTokenCount:
                    _prompt = ReadCount(ref reader) ?? _prompt;
                    break;
                case Field.CandidatesTokenCount:
                    _candidates = ReadCount(ref reader) ?? _candidates;
                    break;
                case Field.ThoughtsTokenCount:
                    _thoughts = ReadCount(ref reader) ?? _thoughts;
                    break;
            }

            Facts = facts;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not a valid value: the field counts as absent.
        }
    }

    private static long? ReadCount(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : null;
}
