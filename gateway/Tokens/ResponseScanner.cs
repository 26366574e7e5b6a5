using System.Text.Json;

namespace Gateway.Tokens;

/// <summary>
/// Where one API's whole JSON answer (<c>"stream": false</c>) keeps its model, its counts and its mark of a
/// finished answer: declared by the API's adapter (Protocols/), found by <see cref="ResponseScanner"/>.
/// Paths as <see cref="JsonFieldTable"/> reads them. An <c>error</c> field (an object, or any value but
/// null) marks an error in every API.
/// </summary>
internal sealed class WholeBodyFields
{
    internal const int Model = 0, Completion = 1, Prompt = 2, EndIfTrue = 3, EndIfString = 4, Status = 5, Error = 6;

    public WholeBodyFields()
    {
        Table.Add(Error, "error");
    }

    internal JsonFieldTable Table { get; } = new();

    /// <summary>The model's name; the first found is taken.</summary>
    public WholeBodyFields ModelAt(params string[] paths) => With(Model, paths);

    /// <summary>Completion-token counts: several are summed (Gemini's candidates and thoughts).</summary>
    public WholeBodyFields CompletionAt(params string[] paths) => With(Completion, paths);

    /// <summary>Prompt-token counts: several are summed.</summary>
    public WholeBodyFields PromptAt(params string[] paths) => With(Prompt, paths);

    /// <summary>A <c>true</c> here is the end mark (<c>done</c>, <c>stop</c>).</summary>
    public WholeBodyFields EndWhenTrue(params string[] paths) => With(EndIfTrue, paths);

    /// <summary>Any string here is the end mark (<c>stop_reason</c>, <c>choices[].finish_reason</c>).</summary>
    public WholeBodyFields EndWhenString(params string[] paths) => With(EndIfString, paths);

    /// <summary>A status: <c>completed</c> or <c>incomplete</c> is the end mark, <c>failed</c> an error.</summary>
    public WholeBodyFields StatusAt(string path) => With(Status, [path]);

    /// <summary>Every field of <paramref name="apis"/>: for answers of an API the gateway does not know.</summary>
    public static WholeBodyFields Union(IEnumerable<WholeBodyFields> apis)
    {
        var union = new WholeBodyFields();
        foreach (var api in apis)
        {
            foreach (var (kind, path) in api.Table.Paths)
            {
                union.Table.Add(kind, path);
            }
        }

        return union;
    }

    private WholeBodyFields With(int kind, string[] paths)
    {
        foreach (var path in paths)
        {
            Table.Add(kind, path);
        }

        return this;
    }
}

/// <summary>
/// The counts and end mark of a whole JSON answer, found as the answer passes to the client, however large,
/// without holding it, at the fields its API declares (<see cref="WholeBodyFields"/>). A top-level array
/// (Gemini's stream without <c>alt=sse</c>, some TGI versions) is read as a run of answers, the last count winning.
/// </summary>
internal sealed class ResponseScanner(WholeBodyFields fields) : JsonScanner(allowTopLevelArray: true)
{
    private readonly JsonFieldTable _table = fields.Table;
    private readonly long?[] _completion = new long?[fields.Table.Count(WholeBodyFields.Completion)];
    private readonly long?[] _prompt = new long?[fields.Table.Count(WholeBodyFields.Prompt)];

    /// <summary>The answer's facts: the upstream's counts, its end mark or error, its model.</summary>
    public ChunkFacts Facts { get; private set; }

    /// <summary>Folds the counts into <see cref="Facts"/> once the answer has passed.</summary>
    public ChunkFacts Finish(bool wantModel)
    {
        var facts = Facts;
        facts.CompletionTokens = Sum(_completion);
        facts.PromptTokens = Sum(_prompt);
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
            return _table.Find(key, -1);
        }

        if (level == 2 && !IsArrayAt(Depth - 1) && _table.IsObject(OpenerAt(Depth - 1)))
        {
            return _table.Find(key, OpenerAt(Depth - 1));
        }

        // An object in an array of objects (choices[], candidates[]).
        if (level == 3 && IsArrayAt(Depth - 2) && _table.IsItems(OpenerAt(Depth - 2)))
        {
            return _table.Find(key, OpenerAt(Depth - 2));
        }

        return -1;
    }

    protected override void OnContainer(int field)
    {
        if (_table.Kind(field) == WholeBodyFields.Error)
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
            switch (_table.Kind(field))
            {
                case WholeBodyFields.Model:
                    if (facts.Model is null && reader.TokenType == JsonTokenType.String)
                    {
                        facts.Model = reader.GetString();
                    }

                    break;
                case WholeBodyFields.EndIfTrue:
                    facts.End |= reader.TokenType == JsonTokenType.True;
                    break;
                case WholeBodyFields.EndIfString:
                    facts.End |= reader.TokenType == JsonTokenType.String;
                    break;
                case WholeBodyFields.Status:
                    facts.End |= reader.ValueTextEquals("completed"u8) || reader.ValueTextEquals("incomplete"u8);
                    facts.Error |= reader.ValueTextEquals("failed"u8);
                    break;
                case WholeBodyFields.Error:
                    facts.Error |= reader.TokenType != JsonTokenType.Null;
                    break;
                case WholeBodyFields.Completion:
                    _completion[_table.Slot(field)] = ReadCount(ref reader) ?? _completion[_table.Slot(field)];
                    break;
                case WholeBodyFields.Prompt:
                    _prompt[_table.Slot(field)] = ReadCount(ref reader) ?? _prompt[_table.Slot(field)];
                    break;
            }

            Facts = facts;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not a valid value: the field counts as absent.
        }
    }

    private static long? Sum(long?[] counts)
    {
        long? sum = null;
        foreach (var count in counts)
        {
            if (count is { } value)
            {
                sum = (sum ?? 0) + value;
            }
        }

        return sum;
    }

    private static long? ReadCount(ref Utf8JsonReader reader) =>
        reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value) && value >= 0 ? value : null;
}
