using System.Text.Json;

namespace Gateway.Tokens;

/// <summary>
/// Finds a few scalar fields of a JSON document as its bytes pass, whatever its size and wherever the
/// fields sit: <c>model</c> after a long <c>messages</c> array is found as well as before it. Holds at
/// most one small value, never the document. A subclass says which keys it wants
/// (<see cref="FieldFor"/>) and takes their values (<see cref="OnValue"/>).
/// </summary>
/// <remarks>
/// A structural scan rather than <see cref="Utf8JsonReader"/> over the stream: the reader must keep a
/// token whole across buffers, and one string of a request (an inline image, a pasted file) can be
/// megabytes. Strings are skipped with a vectorised search for the next quote or backslash; only the
/// few wanted values are captured, and each is decoded with <see cref="Utf8JsonReader"/>.
/// </remarks>
internal abstract class JsonScanner(bool allowTopLevelArray = false)
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
    private readonly int[] _opener = new int[MaxDepth]; // the wanted field whose value each open container is, or -1
    private int _currentField = -1;

    /// <summary>True once the body's top-level object has ended.</summary>
    public bool Complete => _phase == Phase.Done;

    /// <summary>True once the bytes stopped being a JSON object; what was found before stays.</summary>
    public bool Invalid => _phase == Phase.Invalid;

    /// <summary>Containers open now: 1 inside the top-level object.</summary>
    protected int Depth => _depth;

    /// <summary>The wanted field whose value the container at <paramref name="depth"/> (0: the document) is, or -1.</summary>
    protected int OpenerAt(int depth) => _opener[depth];

    protected bool IsArrayAt(int depth) => _isArray[depth];

    /// <summary><see cref="Depth"/>, not counting a top-level array: 1 inside each of its objects.</summary>
    protected int Level => _depth > 0 && _isArray[0] ? _depth - 1 : _depth;

    /// <summary>The field a key names in the object open now (at <see cref="Depth"/>), or -1 for none wanted.</summary>
    protected abstract int FieldFor(ReadOnlySpan<byte> key);

    /// <summary>A wanted field's scalar value, as its JSON bytes (at most 258).</summary>
    protected abstract void OnValue(int field, ReadOnlySpan<byte> json);

    /// <summary>A wanted field's value is an object or an array.</summary>
    protected virtual void OnContainer(int field)
    {
    }

    /// <summary>In the bytes of the <see cref="Feed"/> that completed the top-level value, how many it took (the
    /// value's last byte is the one before); -1 until then.</summary>
    public int CompletedWithin { get; private set; } = -1;

    /// <summary>Feeds the next bytes of the body.</summary>
    public void Feed(ReadOnlySpan<byte> bytes)
    {
        var i = 0;
        while (i < bytes.Length)
        {
            switch (_phase)
            {
                case Phase.Done:
                    if (CompletedWithin < 0)
                    {
                        CompletedWithin = i;
                    }

                    return;
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

        if (_phase == Phase.Done && CompletedWithin < 0)
        {
            CompletedWithin = bytes.Length;
        }
    }

    private void Structural(byte b)
    {
        switch (_phase)
        {
            case Phase.Start:
                if (b == '{' || (b == '[' && allowTopLevelArray))
                {
                    Open(isArray: b == '[');
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
            case (byte)'[':
                if (_currentField >= 0)
                {
                    OnContainer(_currentField);
                }

                Open(isArray: b == '[');
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

        _opener[_depth] = _currentField;
        _isArray[_depth++] = isArray;
        _currentField = -1;
        _phase = isArray ? Phase.ExpectValue : Phase.ExpectKey;
    }

    private void Close()
    {
        _depth--;
        _currentField = -1;
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
        if (_currentField >= 0 && _valueLength > 0)
        {
            OnValue(_currentField, _value.AsSpan(0, _valueLength));
        }

        _valueLength = -1;
        _phase = Phase.AfterValue;
    }
}
