using System.Text.RegularExpressions;

namespace Gateway.Tests.Hosting;

/// <summary>
/// The gateway's folders import one way (README, Layout): Hosting on top, then the proxy step (Streams),
/// the features, and the shared bottom. A folder may use only the folders its row names; a new folder
/// must get a row. Reads every <c>using Gateway.X</c> and fully-qualified <c>Gateway.X.</c> in the source.
/// </summary>
public sealed partial class FolderGraphTests
{
    private static readonly string[] Bottom = ["Telemetry", "Errors", "Utilities"];

    public static readonly IReadOnlyDictionary<string, string[]> Allowed = new Dictionary<string, string[]>
    {
        ["Hosting"] = ["Admin", "Affinity", "Chat", "Draining", "Failover", "Health", "Limits", "Savings", "Sessions", "Streams", "Protocols", "Tokens", .. Bottom],
        ["Streams"] = ["Sessions", "Protocols", "Savings", "Limits", "Draining", "Tokens", .. Bottom],
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
        ["Telemetry"] = ["Utilities"],
        ["Errors"] = ["Utilities"],
        ["Utilities"] = [],
    };

    [Fact]
    public void GatewaySource_Imports_OnlyTheFoldersItsRowAllows()
    {
        var violations = Violations(Imports(GatewaySource()));
        Assert.True(violations.Count == 0, "Folder graph broken:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void TwoFoldersImportingEachOther_Fails_NamingTheEdge()
    {
        var source = Directory.CreateTempSubdirectory("folder-graph");
        try
        {
            Write(source, "Streams/Step.cs", "using Gateway.Sessions;\nnamespace Gateway.Streams;\n");
            Write(source, "Sessions/Lease.cs", "namespace Gateway.Sessions;\n/// <see cref=\"Gateway.Streams.Step\"/>\n");
            Write(source, "Newcomer/Thing.cs", "namespace Gateway.Newcomer;\n");

            var violations = Violations(Imports(source.FullName));

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
    public void AllowedTable_HasNoRing()
    {
        // Depth-first over the table itself: a ring here would let two folders import each other.
        var state = new Dictionary<string, int>();
        foreach (var folder in Allowed.Keys)
        {
            Assert.Null(Ring(folder, state, []));
        }
    }

    private static string? Ring(string folder, Dictionary<string, int> state, List<string> path)
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
        foreach (var next in Allowed[folder])
        {
            if (Ring(next, state, path) is { } ring)
            {
                return ring;
            }
        }

        state[folder] = 2;
        path.RemoveAt(path.Count - 1);
        return null;
    }

    private static List<string> Violations(Dictionary<string, HashSet<string>> imports)
    {
        var violations = new List<string>();
        foreach (var (folder, used) in imports.OrderBy(i => i.Key, StringComparer.Ordinal))
        {
            if (!Allowed.TryGetValue(folder, out var allowed))
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

    /// <summary>Each top-level folder to the top-level folders its files name.</summary>
    private static Dictionary<string, HashSet<string>> Imports(string root)
    {
        var folders = Directory.GetDirectories(root).Select(Path.GetFileName).Where(f => f is not ("bin" or "obj" or "wwwroot" or "Properties")).ToHashSet()!;
        var imports = new Dictionary<string, HashSet<string>>();
        foreach (var folder in folders)
        {
            var used = imports[folder!] = [];
            foreach (var file in Directory.EnumerateFiles(Path.Combine(root, folder!), "*.cs", SearchOption.AllDirectories))
            {
                foreach (Match match in Reference().Matches(File.ReadAllText(file)))
                {
                    if (folders.Contains(match.Groups[1].Value))
                    {
                        used.Add(match.Groups[1].Value);
                    }
                }
            }
        }

        return imports;
    }

    [GeneratedRegex(@"\bGateway\.([A-Z][A-Za-z]*)\b")]
    private static partial Regex Reference();

    private static void Write(DirectoryInfo root, string path, string text)
    {
        var file = Path.Combine(root.FullName, path);
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        File.WriteAllText(file, text);
    }

    private static string GatewaySource()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln")))
        {
            dir = dir.Parent;
        }

        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("Gateway.sln not found above the test binaries."), "gateway");
    }
}
