using System.Text;

namespace Gateway.Tokens;

/// <summary>
/// The fields a <see cref="JsonScanner"/> wants, by path: a top-level name (<c>eval_count</c>), a name in a
/// top-level object (<c>usage.output_tokens</c>), or a name in each object of a top-level array
/// (<c>choices[].finish_reason</c>). Each field has a kind (what its value tells) and a slot (its place
/// among the fields of its kind, in the order they were added). The containers on a path are fields too,
/// of kind <see cref="Container"/>, shared by the paths through them.
/// </summary>
internal sealed class JsonFieldTable
{
    public const int Container = -1;

    private readonly List<Field> _fields = [];
    private readonly List<(int Kind, string Path)> _paths = [];

    private readonly record struct Field(byte[] Name, int Parent, bool Items, int Kind, int Slot);

    /// <summary>The paths added, with their kinds, in order.</summary>
    public IReadOnlyList<(int Kind, string Path)> Paths => _paths;

    /// <summary>Adds a path of <paramref name="kind"/>; a path already there is not added twice.</summary>
    public void Add(int kind, string path)
    {
        if (_paths.Contains((kind, path)))
        {
            return;
        }

        var dot = path.IndexOf('.');
        var parent = -1;
        var name = path;
        if (dot >= 0)
        {
            var container = path[..dot];
            var items = container.EndsWith("[]", StringComparison.Ordinal);
            parent = ContainerField(items ? container[..^2] : container, items);
            name = path[(dot + 1)..];
        }

        if (name.Length == 0 || name.Contains('.') || Encoding.UTF8.GetByteCount(name) > 32)
        {
            throw new ArgumentException($"'{path}' is not a path of one or two names of at most 32 bytes", nameof(path));
        }

        _fields.Add(new Field(Encoding.UTF8.GetBytes(name), parent, false, kind, _fields.Count(f => f.Kind == kind)));
        _paths.Add((kind, path));
    }

    /// <summary>Fields of <paramref name="kind"/>: the slots a scanner keeps their values in.</summary>
    public int Count(int kind) => _fields.Count(f => f.Kind == kind);

    public int Kind(int field) => _fields[field].Kind;

    public int Slot(int field) => _fields[field].Slot;

    /// <summary>True for a container whose value is an array of objects (<c>choices[]</c>).</summary>
    public bool IsItems(int field) => field >= 0 && _fields[field].Kind == Container && _fields[field].Items;

    /// <summary>True for a container whose value is an object.</summary>
    public bool IsObject(int field) => field >= 0 && _fields[field].Kind == Container && !_fields[field].Items;

    /// <summary>The field named <paramref name="key"/> inside <paramref name="parent"/> (-1: the top level), or -1.</summary>
    public int Find(ReadOnlySpan<byte> key, int parent)
    {
        var fields = _fields;
        for (var i = 0; i < fields.Count; i++)
        {
            if (fields[i].Parent == parent && key.SequenceEqual(fields[i].Name))
            {
                return i;
            }
        }

        return -1;
    }

    private int ContainerField(string name, bool items)
    {
        for (var i = 0; i < _fields.Count; i++)
        {
            if (_fields[i].Parent == -1 && _fields[i].Kind == Container && _fields[i].Items == items && _fields[i].Name.AsSpan().SequenceEqual(Encoding.UTF8.GetBytes(name)))
            {
                return i;
            }
        }

        _fields.Add(new Field(Encoding.UTF8.GetBytes(name), -1, items, Container, 0));
        return _fields.Count - 1;
    }
}
