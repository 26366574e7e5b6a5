using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>Where one API's request body keeps its facts: <c>model</c>, <c>stream</c>, and its cap on generated
/// tokens at the paths its adapter declares, the first found in the order given (servers take
/// <c>max_completion_tokens</c> before <c>max_tokens</c>).</summary>
internal sealed class RequestFields
{
    internal const int Model = 0, Stream = 1, Cap = 2;

    public RequestFields(params string[] capPaths)
    {
        Table.Add(Model, "model");
        Table.Add(Stream, "stream");
        foreach (var path in capPaths)
        {
            Table.Add(Cap, path);
        }
    }

    internal JsonFieldTable Table { get; } = new();
}

/// <summary>
/// The request-body fields of one API (<see cref="RequestFields"/>), found as the body is forwarded: top-level
/// fields and caps one level down (<c>generationConfig</c>, <c>options</c>, <c>parameters</c>).
/// </summary>
internal sealed class BodyScanner(RequestFields fields) : JsonScanner
{
    private readonly JsonFieldTable _table = fields.Table;
    private readonly long?[] _caps = new long?[fields.Table.Count(RequestFields.Cap)];
    private string? _model;
    private bool? _stream;

    public string? Model => _model;

    public bool? Stream => _stream;

    /// <summary>The cap at the first of the API's cap paths that holds a positive number; 0, negatives and
    /// non-numbers count as absent.</summary>
    public long? Cap
    {
        get
        {
            foreach (var cap in _caps)
            {
                if (cap is not null)
                {
                    return cap;
                }
            }

            return null;
        }
    }

    protected override void OnValue(int field, ReadOnlySpan<byte> json)
    {
        var kind = _table.Kind(field);
        if (kind == JsonFieldTable.Container)
        {
            return; // a parent (generationConfig, options, parameters) holds its cap one level down
        }

        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read())
            {
                return;
            }

            switch (kind)
            {
                case RequestFields.Model:
                    if (reader.TokenType == JsonTokenType.String && _model is null)
                    {
                        _model = reader.GetString();
                    }

                    break;
                case RequestFields.Stream:
                    _stream = reader.TokenType switch
                    {
                        JsonTokenType.True => true,
                        JsonTokenType.False => false,
                        _ => _stream,
                    };
                    break;
                default:
                    if (reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var value))
                    {
                        _caps[_table.Slot(field)] = value > 0 ? value : null;
                    }

                    break;
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Not a valid value (a bare word, invalid UTF-8): the field counts as absent.
        }
    }

    /// <summary>The wanted field a key names at the current depth, or -1.</summary>
    protected override int FieldFor(ReadOnlySpan<byte> key)
    {
        if (Depth == 1)
        {
            return _table.Find(key, -1);
        }

        // Inside one of the objects a cap path names: the cap in it.
        return Depth == 2 && !IsArrayAt(1) && _table.IsObject(OpenerAt(1)) ? _table.Find(key, OpenerAt(1)) : -1;
    }
}
