using System.Text.Json;
using Gateway.Tokens;

namespace Gateway.Protocols;

/// <summary>The request-body fields any adapter may take its facts from, as found by <see cref="BodyScanner"/>.</summary>
internal enum BodyField
{
    Model,
    Stream,
    MaxTokens,
    MaxCompletionTokens,
    MaxOutputTokens,
    NPredict,
    GenerationConfigMaxOutputTokens,
    OptionsNumPredict,
    ParametersMaxNewTokens,
}

/// <summary>
/// The request-body fields of every API (<see cref="BodyField"/>), found as the body is forwarded:
/// top-level fields and the caps one level down (<c>generationConfig</c>, <c>options</c>, <c>parameters</c>).
/// </summary>
internal sealed class BodyScanner : JsonScanner
{
    private string? _model;
    private bool? _stream;
    private readonly long?[] _numbers = new long?[9];

    public string? Model => _model;

    public bool? Stream => _stream;

    /// <summary>A positive number at <paramref name="field"/>; 0, negatives and non-numbers are null.</summary>
    public long? Number(BodyField field) => _numbers[(int)field];

    protected override void OnValue(int wanted, ReadOnlySpan<byte> json)
    {
        // A parent field (generationConfig, options, parameters) holds its cap one level down.
        var field = (BodyField)wanted;
        if (Depth == 1 && field > BodyField.NPredict)
        {
            return;
        }

        try
        {
            var reader = new Utf8JsonReader(json);
            if (!reader.Read())
            {
                return;
            }

            switch (field)
            {
                case BodyField.Model:
                    if (reader.TokenType == JsonTokenType.String && _model is null)
                    {
                        _model = reader.GetString();
                    }

                    break;
                case BodyField.Stream:
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
                        _numbers[(int)field] = value > 0 ? value : null;
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
            return key switch
            {
                _ when key.SequenceEqual("model"u8) => (int)BodyField.Model,
                _ when key.SequenceEqual("stream"u8) => (int)BodyField.Stream,
                _ when key.SequenceEqual("max_tokens"u8) => (int)BodyField.MaxTokens,
                _ when key.SequenceEqual("max_completion_tokens"u8) => (int)BodyField.MaxCompletionTokens,
                _ when key.SequenceEqual("max_output_tokens"u8) => (int)BodyField.MaxOutputTokens,
                _ when key.SequenceEqual("n_predict"u8) => (int)BodyField.NPredict,
                _ when key.SequenceEqual("generationConfig"u8) || key.SequenceEqual("generation_config"u8) => (int)BodyField.GenerationConfigMaxOutputTokens,
                _ when key.SequenceEqual("options"u8) => (int)BodyField.OptionsNumPredict,
                _ when key.SequenceEqual("parameters"u8) => (int)BodyField.ParametersMaxNewTokens,
                _ => -1,
            };
        }

        if (Depth == 2 && !IsArrayAt(1))
        {
            // Inside one of the objects above: the parent's field is the one its cap fills.
            var parent = OpenerAt(1);
            return (BodyField)parent switch
            {
                BodyField.GenerationConfigMaxOutputTokens when key.SequenceEqual("maxOutputTokens"u8) || key.SequenceEqual("max_output_tokens"u8) => parent,
                BodyField.OptionsNumPredict when key.SequenceEqual("num_predict"u8) => parent,
                BodyField.ParametersMaxNewTokens when key.SequenceEqual("max_new_tokens"u8) => parent,
                _ => -1,
            };
        }

        return -1;
    }
}
