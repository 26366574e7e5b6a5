using System.Text.RegularExpressions;

namespace Gateway.Tests.Hosting;

/// <summary>
/// Each program's folders import one way. The gateway (README, Layout): Hosting on top, then the proxy step
/// (Streams), the features, and the shared bottom. The mock (mock-llm/README.md, Layout): the entry points at
/// the root, Hosting, the APIs (Protocols), the generation loop, and what it records. A folder may use only the
/// folders its row names; a new folder must get a row. Reads every <c>using Root.X</c> and fully-qualified
/// <c>Root.X.</c> in the source; the root's own files are the row named after the root namespace, and since
/// their types are in scope everywhere below without a using, a folder naming one of them uses the root.
/// </summary>
public sealed partial class FolderGraphTests
{
    private static readonly string[] Bottom = ["Redis", "Telemetry", "Utilities"];

    public static readonly IReadOnlyDictionary<string, string[]> GatewayAllowed = new Dictionary<string, string[]>
    {
        ["Gateway"] = ["Hosting"],
        ["Hosting"] = ["Admin", "Affinity", "Chat", "Draining", "Failover", "Health", "Limits", "Resume", "Savings", "SessionApi", "Sessions", "Streams", "Protocols", "Tokens", .. Bottom],
        ["SessionApi"] = ["Sessions", "Protocols", "Savings", "Limits", .. Bottom],
        ["Streams"] = ["Sessions", "Protocols", "Savings", "Draining", "Resume", "Tokens", .. Bottom],
        ["Resume"] = ["Sessions", "Protocols", .. Bottom],
        ["Admin"] = ["Sessions", .. Bottom],
        ["Affinity"] = ["Sessions", .. Bottom],
        ["Failover"] = ["Affinity", .. Bottom],
        ["Chat"] = [.. Bottom],
        ["Health"] = [.. Bottom],
        ["Limits"] = ["Sessions", "Savings", "Protocols", "Tokens", .. Bottom],
        ["Draining"] = ["Savings", "Protocols", "Tokens", .. Bottom],
        ["Savings"] = ["Protocols", "Tokens", .. Bottom],
        ["Sessions"] = ["Protocols", "Tokens", .. Bottom],
        ["Protocols"] = ["Tokens", .. Bottom],
        ["Tokens"] = ["Telemetry", "Utilities"],
        ["Redis"] = ["Telemetry", "Utilities"],
        ["Telemetry"] = ["Utilities"],
        ["Utilities"] = [],
    };

    public static readonly IReadOnlyDictionary<string, string[]> MockLlmAllowed = new Dictionary<string, string[]>
    {
        ["MockLlm"] = ["Hosting", "Generation", "Recording"],
        ["Hosting"] = ["Protocols", "Generation", "Recording"],
        ["Protocols"] = ["Generation", "Errors"],
        ["Generation"] = ["Recording", "Errors"],
        ["Recording"] = [],
        ["Errors"] = [],
    };

    /// <summary>Each program by its folder at the repository root.</summary>
    private static readonly Dictionary<string, Graph> Graphs = new()
    {
        ["gateway"] = new("Gateway", GatewayAllowed),
        ["mock-llm"] = new("MockLlm", MockLlmAllowed),
    };

    [Theory]
    [InlineData("gateway")]
    [InlineData("mock-llm")]
    public void Source_Imports_OnlyTheFoldersItsRowAllows(string program)
    {
        var graph = Graphs[program];
        var violations = Violations(graph.Allowed, Imports(Source(program), graph.Namespace));
        Assert.True(violations.Count == 0, $"{program}'s folder graph broken:\n" + string.Join("\n", violations));
    }

    [Theory]
    [InlineData("gateway")]
    [InlineData("mock-llm")]
    public void EveryFile_DeclaresTheNamespaceOfItsFolder(string program)
    {
        // The graph reads folders from namespaces: a file in Recording/ declaring MockLlm would hide its imports.
        var wrong = MisplacedNamespaces(Source(program), Graphs[program].Namespace);
        Assert.True(wrong.Count == 0, $"{program}'s namespaces do not match their folders:\n" + string.Join("\n", wrong));
    }

    /// <summary>The README's diagram of each program (rows of folders, <c>▼</c> between them) names every folder of the
    /// table once, and every edge the table allows goes to a row below: the picture a newcomer reads is the table.</summary>
    [Theory]
    [InlineData("gateway", "README.md")]
    [InlineData("mock-llm", "mock-llm/README.md")]
    public void ReadmeDiagram_NamesEveryFolder_AndTheTableGoesDownIt(string program, string readme)
    {
        var allowed = Graphs[program].Allowed;
        var rows = DiagramRows(File.ReadAllText(Path.Combine(RepositoryRoot(), readme)), Graphs[program].Namespace);
        var rowOf = new Dictionary<string, int>();
        for (var i = 0; i < rows.Count; i++)
        {
            foreach (var folder in rows[i])
            {
                Assert.True(rowOf.TryAdd(folder, i), $"{readme}: {folder} is in the diagram twice");
            }
        }

        Assert.Equal(allowed.Keys.Order(StringComparer.Ordinal), rowOf.Keys.Order(StringComparer.Ordinal));
        var upward = allowed.SelectMany(row => row.Value.Where(target => rowOf[target] <= rowOf[row.Key]).Select(target => $"{row.Key} -> {target}")).ToList();
        Assert.True(upward.Count == 0, $"{readme}: the table allows edges that do not go down the diagram:\n" + string.Join("\n", upward));
    }

    [Fact]
    public void ReadmeDiagram_RowsAreRead_FromTheFencedBlockWithArrows_NotTheOthers()
    {
        const string Readme = "intro\n\n```bash\nrun\n```\n\n```\nGateway (root)    text\n   ▼\nHosting   Streams    text\n   ▼\nUtilities\n```\n";
        var rows = DiagramRows(Readme, "Gateway");
        Assert.Equal([["Gateway"], ["Hosting", "Streams"], ["Utilities"]], rows);
    }

    /// <summary>The folders of each row of the first fenced block whose second line is a <c>▼</c>: a row's names are its
    /// leading capitalised words (its text begins with anything else); the root is written <c>Name (root)</c>.</summary>
    private static List<List<string>> DiagramRows(string readme, string rootNamespace)
    {
        List<string>? block = null;
        foreach (var line in readme.Split('\n'))
        {
            if (line.StartsWith("```", StringComparison.Ordinal))
            {
                if (block is null)
                {
                    block = [];
                    continue;
                }

                if (block.Count >= 2 && block[1].Trim() == "▼")
                {
                    return block.Where(l => l.Trim() is { Length: > 0 } t && t != "▼")
                        .Select(l => l.Replace($"{rootNamespace} (root)", rootNamespace, StringComparison.Ordinal))
                        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).TakeWhile(word => DiagramName().IsMatch(word)).ToList())
                        .ToList();
                }

                block = null;
                continue;
            }

            block?.Add(line);
        }

        throw new InvalidOperationException("no layer diagram (a fenced block with ▼ on its second line)");
    }

    /// <summary>A folder's name: a capitalised word of letters (a row's text after its names starts otherwise).</summary>
    [GeneratedRegex("^[A-Z][A-Za-z]*$")]
    private static partial Regex DiagramName();

    [Fact]
    public void TwoFoldersImportingEachOther_Fails_NamingTheEdge()
    {
        var source = Directory.CreateTempSubdirectory("folder-graph");
        try
        {
            Write(source, "Streams/Step.cs", "using Gateway.Sessions;\nnamespace Gateway.Streams;\n");
            Write(source, "Sessions/Lease.cs", "namespace Gateway.Sessions;\n/// <see cref=\"Gateway.Streams.Step\"/>\n");
            Write(source, "Newcomer/Thing.cs", "namespace Gateway.Newcomer;\n");

            var violations = Violations(GatewayAllowed, Imports(source.FullName, "Gateway"));

            Assert.Contains("Sessions -> Streams (not in its row)", violations);
            Assert.Contains("Newcomer has no row: place it in the graph", violations);
            Assert.DoesNotContain(violations, v => v.StartsWith("Streams ->", StringComparison.Ordinal));
        }
        finally
        {
            source.Delete(recursive: true);
        }
    }

    [Fact]
    public void MockLlmRing_Fails_NamingTheEdges()
    {
        // The mock as it was: the generation loop wrote the APIs' error bodies while the APIs drive the loop, its
        // options sat at the root (in scope below without a using), and the ledger declared the root namespace.
        var source = Directory.CreateTempSubdirectory("folder-graph");
        try
        {
            Write(source, "MockLlmOptions.cs", "namespace MockLlm;\npublic sealed class MockLlmOptions;\n");
            Write(source, "Protocols/ErrorResponse.cs", "namespace MockLlm.Protocols;\n");
            Write(source, "Protocols/OpenAiEndpoints.cs", "using MockLlm.Generation;\nnamespace MockLlm.Protocols;\n");
            Write(source, "Generation/TokenStreamer.cs",
                "using MockLlm.Protocols;\nnamespace MockLlm.Generation;\ninternal sealed class TokenStreamer(IOptions<MockLlmOptions> options);\n");
            Write(source, "Recording/Ledger.cs", "namespace MockLlm;\n/// <summary>Read through <c>MockLlmOptions</c>.</summary>\n");

            var violations = Violations(MockLlmAllowed, Imports(source.FullName, "MockLlm"));

            Assert.Contains("Generation -> Protocols (not in its row)", violations);
            Assert.Contains("Generation -> MockLlm (not in its row)", violations);
            Assert.DoesNotContain(violations, v => v.StartsWith("Protocols ->", StringComparison.Ordinal));
            Assert.DoesNotContain(violations, v => v.StartsWith("Recording ->", StringComparison.Ordinal));
            Assert.Equal(["Recording/Ledger.cs: namespace MockLlm, not MockLlm.Recording"], MisplacedNamespaces(source.FullName, "MockLlm"));
        }
        finally
        {
            source.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData("gateway")]
    [InlineData("mock-llm")]
    public void AllowedTable_HasNoRing(string program)
    {
        // Depth-first over the table itself: a ring here would let two folders import each other.
        var allowed = Graphs[program].Allowed;
        var state = new Dictionary<string, int>();
        foreach (var folder in allowed.Keys)
        {
            Assert.Null(Ring(allowed, folder, state, []));
        }
    }

    private static string? Ring(IReadOnlyDictionary<string, string[]> allowed, string folder, Dictionary<string, int> state, List<string> path)
    {
        if (state.GetValueOrDefault(folder) == 2)
        {
            return null;
        }

        path.Add(folder);
        if (state.GetValueOrDefault(folder) == 1)
        {
            return string.Join(" -> ", path);
        }

        state[folder] = 1;
        foreach (var next in allowed[folder])
        {
            if (Ring(allowed, next, state, path) is { } ring)
            {
                return ring;
            }
        }

        state[folder] = 2;
        path.RemoveAt(path.Count - 1);
        return null;
    }

    private static List<string> Violations(IReadOnlyDictionary<string, string[]> table, Dictionary<string, HashSet<string>> imports)
    {
        var violations = new List<string>();
        foreach (var (folder, used) in imports.OrderBy(i => i.Key, StringComparer.Ordinal))
        {
            if (!table.TryGetValue(folder, out var allowed))
            {
                violations.Add($"{folder} has no row: place it in the graph");
                continue;
            }

            foreach (var target in used.Where(u => u != folder && !allowed.Contains(u)).Order(StringComparer.Ordinal))
            {
                violations.Add($"{folder} -> {target} (not in its row)");
            }
        }

        return violations;
    }

    /// <summary>Each top-level folder, and the root's own files under the root namespace's name, to the top-level
    /// folders its files name. A folder naming a type declared at the root uses the root (a <c>&lt;c&gt;Name&lt;/c&gt;</c>
    /// mention in a comment does not count).</summary>
    private static Dictionary<string, HashSet<string>> Imports(string root, string rootNamespace)
    {
        var folders = Directory.GetDirectories(root).Select(d => Path.GetFileName(d)).Where(f => f is not ("bin" or "obj" or "wwwroot" or "Properties")).ToHashSet();
        var reference = new Regex($@"\b{Regex.Escape(rootNamespace)}\.([A-Z][A-Za-z]*)\b");
        var rootFiles = Directory.GetFiles(root, "*.cs");
        var rootTypes = rootFiles.SelectMany(f => Declaration().Matches(File.ReadAllText(f))).Select(m => m.Groups[1].Value).ToHashSet();
        var rootUse = rootTypes.Count == 0 ? null : new Regex($@"(?<!<c>)\b(?:{string.Join('|', rootTypes)})\b");

        var imports = new Dictionary<string, HashSet<string>> { [rootNamespace] = FoldersNamedIn(rootFiles) };
        foreach (var folder in folders)
        {
            var files = Directory.GetFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories);
            var used = imports[folder] = FoldersNamedIn(files);
            if (rootUse is not null && files.Any(f => rootUse.IsMatch(File.ReadAllText(f))))
            {
                used.Add(rootNamespace);
            }
        }

        return imports;

        HashSet<string> FoldersNamedIn(string[] files) =>
            files.SelectMany(f => reference.Matches(File.ReadAllText(f))).Select(m => m.Groups[1].Value).Where(folders.Contains).ToHashSet();
    }

    /// <summary>Files whose namespace is not the root namespace followed by their folders (a root file may
    /// also have none: top-level statements).</summary>
    private static List<string> MisplacedNamespaces(string root, string rootNamespace)
    {
        var wrong = new List<string>();
        foreach (var file in Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
            var folders = relative.Split('/')[..^1];
            if (folders is ["bin" or "obj", ..])
            {
                continue;
            }

            var expected = string.Join('.', [rootNamespace, .. folders]);
            var declared = Namespace().Match(File.ReadAllText(file)) is { Success: true } match ? match.Groups[1].Value : null;
            if (declared != expected && !(declared is null && folders.Length == 0))
            {
                wrong.Add($"{relative}: namespace {declared ?? "(none)"}, not {expected}");
            }
        }

        return wrong;
    }

    [GeneratedRegex(@"\b(?:class|struct|record|interface|enum)\s+([A-Z][A-Za-z0-9]*)")]
    private static partial Regex Declaration();

    [GeneratedRegex(@"^namespace\s+([\w.]+)", RegexOptions.Multiline)]
    private static partial Regex Namespace();

    private static void Write(DirectoryInfo root, string path, string text)
    {
        var file = Path.Combine(root.FullName, path);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
    }

    /// <summary>A program's source folder.</summary>
    private static string Source(string program) => Path.Combine(RepositoryRoot(), program);

    /// <summary>The clone, found from the test binaries by walking up to Gateway.sln.</summary>
    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Gateway.sln not found above the test binaries.");
    }

    /// <summary>A program's root namespace and its table of folder to the folders it may use.</summary>
    private sealed record Graph(string Namespace, IReadOnlyDictionary<string, string[]> Allowed);
}
