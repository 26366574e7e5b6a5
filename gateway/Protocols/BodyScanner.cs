using System.Text.Json;

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
/// Finds a few top-level (and one-level nested) scalar fields of a JSON request body as its bytes pass
/// to the upstream, whatever the body's size and wherever the fields sit: <c>model</c> after a long
/// <c>messages</c> array is found as well as before it. Holds at most one small value, never the body.
/// </summary>
/// <remarks>
/// A structural scan rather than <see cref="Utf8JsonReader"/> over the stream: the reader must keep a
/// token whole across buffers, and one string of a request (an inline image, a pasted file) can be
/// megabytes. Strings are skipped with a vectorised search for the next quote or backslash; only the
/// few wanted values are captured, and each is decoded with <see cref="Utf8JsonReader"/>.
/// </remarks>
internal sealed class BodyScanner
{
    public const int MaxModelBytes = 256;
    private const int MaxDepth = 64;
    private const int MaxKeyBytes = 32;
    private const int MaxValueBytes = MaxModelBytes + 2;

    private enum Phase : byte
    {
        Start,
        ExpectKey,       // after '{' or ',' in an object
        InKey,
        ExpectColon,
        ExpectValue,     // after ':' or '[' or ',' in an array
        InString,
        InScalar,
        AfterValue,
        Done,
        Invalid,
    }

    private readonly bool[] _isArray = new bool[MaxDepth];
    private readonly byte[] _key = new byte[MaxKeyBytes];
    private readonly byte[] _value = new byte[MaxValueBytes];
    private Phase _phase;
    private int _depth;
    private bool _escaped;
    private int _keyLength;   // -1: longer than any wanted key
    private int _valueLength; // -1: not captured (not wanted, or too long)
    private int _parentKey = -1; // the wanted object key at depth 1 we are inside, or -1
    private int _currentField = -1;

    private string? _model;
    private bool? _stream;
    private readonly long?[] _numbers = new long?[9];

    /// <summary>True once the body's top-level object has ended.</summary>
    public bool Complete => _phase == Phase.Done;

    /// <summary>True once the bytes stopped being a JSON object; what was found before stays.</summary>
    public bool Invalid => _phase == Phase.Invalid;

    public string? Model => _model;

    public bool? Stream => _stream;

    /// <summary>A positive number at <paramref name="field"/>; 0, negatives and non-numbers are null.</summary>
    public long? Number(BodyField field) => _numbers[(int)field];

    /// <summary>Feeds the next bytes of the body.</summary>
    public void Feed(ReadOnlySpan<byte> bytes)
    {
        var i = 0;
        while (i < bytes.Length)
        {
            switch (_phase)
            {
                case Phase.Done:
                case Phase.Invalid:
                    return;
                case Phase.InKey:
                case Phase.InString:
                    i = ScanString(bytes, i);
                    continue;
                case Phase.InScalar:
                    i = ScanScalar(bytes, i);
                    continue;
            }

            var b = bytes[i++];
            if (b is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                continue;
            }

            Structural(b);
        }
    }

    private void Structural(byte b)
    {
        switch (_phase)
        {
            case Phase.Start:
                if (b == '{')
                {
                    Open(isArray: false);
                }
                else
                {
                    _phase = Phase.Invalid;
                }

                return;
            case Phase.ExpectKey:
                if (b == '"')
                {
                    _phase = Phase.InKey;
                    _keyLength = 0;
                }
                else if (b == '}')
                {
                    Close();
                }
                else
                {
                    _phase = Phase.Invalid;
                }

                return;
            case Phase.ExpectColon:
                _phase = b == ':' ? Phase.ExpectValue : Phase.Invalid;
                return;
            case Phase.ExpectValue:
                BeginValue(b);
                return;
            case Phase.AfterValue:
                if (b == ',')
                {
                    _phase = _isArray[_depth - 1] ? Phase.ExpectValue : Phase.ExpectKey;
                    _currentField = -1;
                }
                else if (b == (_isArray[_depth - 1] ? ']' : '}'))
                {
                    Close();
                }
                else
                {
                    _phase = Phase.Invalid;
                }

                return;
        }
    }

    private void BeginValue(byte b)
    {
        switch (b)
        {
            case (byte)'{':
                // Only {"generationConfig": {...}} and the like are looked into: remember which.
                if (_depth == 1)
                {
                    _parentKey = _currentField;
                }

                Open(isArray: false);
                return;
            case (byte)'[':
                Open(isArray: true);
                return;
            case (byte)']' when _isArray[_depth - 1]:
                Close(); // an empty array
                return;
            case (byte)'"':
                _phase = Phase.InString;
                _valueLength = _currentField >= 0 ? 0 : -1;
                Capture(b);
                return;
            default:
                _phase = Phase.InScalar;
                _valueLength = _currentField >= 0 ? 0 : -1;
                Capture(b);
                return;
        }
    }

    private void Open(bool isArray)
    {
        if (_depth == MaxDepth)
        {
            _phase = Phase.Invalid;
            return;
        }

        _isArray[_depth++] = isArray;
        _currentField = -1;
        _phase = isArray ? Phase.ExpectValue : Phase.ExpectKey;
    }

    private void Close()
    {
        _depth--;
        _currentField = -1;
        if (_depth == 1)
        {
            _parentKey = -1;
        }

        _phase = _depth == 0 ? Phase.Done : Phase.AfterValue;
    }

    private int ScanString(ReadOnlySpan<byte> bytes, int i)
    {
        var inKey = _phase == Phase.InKey;
        while (i < bytes.Length)
        {
            if (_escaped)
            {
                _escaped = false;
                Take(inKey, bytes[i++]);
                continue;
            }

            var rest = bytes[i..];
            var stop = rest.IndexOfAny((byte)'"', (byte)'\\');
            if (stop < 0)
            {
                Take(inKey, rest);
                return bytes.Length;
            }

            Take(inKey, rest[..stop]);
            i += stop + 1;
            if (rest[stop] == '\\')
            {
                _escaped = true;
                Take(inKey, (byte)'\\');
                continue;
            }

            if (inKey)
            {
                _currentField = FieldFor(_key.AsSpan(0, Math.Max(0, _keyLength)));
                _phase = Phase.ExpectColon;
            }
            else
            {
                Capture((byte)'"');
                EndValue();
            }

            return i;
        }

        return i;
    }

    private int ScanScalar(ReadOnlySpan<byte> bytes, int i)
    {
        while (i < bytes.Length)
        {
            var b = bytes[i];
            if (b is (byte)',' or (byte)'}' or (byte)']' or (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
            {
                EndValue();
                return i; // the delimiter is read as structure
            }

            Capture(b);
            i++;
        }

        return i;
    }

    private void Take(bool inKey, byte b)
    {
        if (inKey)
        {
            if (_keyLength >= 0 && _keyLength < MaxKeyBytes)
            {
                _key[_keyLength++] = b;
            }
            else
            {
                _keyLength = -1;
            }
        }
        else
        {
            Capture(b);
        }
    }

    private void Take(bool inKey, ReadOnlySpan<byte> run)
    {
        if (run.IsEmpty)
        {
            return;
        }

        if (inKey)
        {
            if (_keyLength >= 0 && _keyLength + run.Length <= MaxKeyBytes)
            {
                run.CopyTo(_key.AsSpan(_keyLength));
                _keyLength += run.Length;
            }
            else
            {
                _keyLength = -1;
            }
        }
        else if (_valueLength >= 0)
        {
            if (_valueLength + run.Length <= MaxValueBytes)
            {
                run.CopyTo(_value.AsSpan(_valueLength));
                _valueLength += run.Length;
            }
            else
            {
                _valueLength = -1;
            }
        }
    }

    private void Capture(byte b)
    {
        if (_valueLength >= 0)
        {
            if (_valueLength < MaxValueBytes)
            {
                _value[_valueLength++] = b;
            }
            else
            {
                _valueLength = -1;
            }
        }
    }

    private void EndValue()
    {
        // A parent field (generationConfig, options, parameters) holds its cap one level down.
        if (_currentField >= 0 && _valueLength > 0 && (_depth == 2 || _currentField <= (int)BodyField.NPredict))
        {
            Decode((BodyField)_currentField, _value.AsSpan(0, _valueLength));
        }

        _valueLength = -1;
        _phase = Phase.AfterValue;
    }

    private void Decode(BodyField field, ReadOnlySpan<byte> json)
    {
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
    private int FieldFor(ReadOnlySpan<byte> key)
    {
        if (_depth == 1)
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

        if (_depth == 2 && !_isArray[1])
        {
            // Inside one of the objects above: the parent's field is the one its cap fills.
            return (BodyField)_parentKey switch
            {
                BodyField.GenerationConfigMaxOutputTokens when key.SequenceEqual("maxOutputTokens"u8) || key.SequenceEqual("max_output_tokens"u8) => _parentKey,
                BodyField.OptionsNumPredict when key.SequenceEqual("num_predict"u8) => _parentKey,
                BodyField.ParametersMaxNewTokens when key.SequenceEqual("max_new_tokens"u8) => _parentKey,
                _ => -1,
            };
        }

        return -1;
    }
}
