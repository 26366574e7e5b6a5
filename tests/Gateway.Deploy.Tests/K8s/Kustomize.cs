using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Gateway.Deploy.Tests.Infrastructure;

namespace Gateway.Deploy.Tests.K8s;

/// <summary>The overlays under deploy/k8s/overlays, rendered once per run with <c>kubectl kustomize</c>.</summary>
internal static class Kustomize
{
    public static string OverlaysDir => Path.Combine(Repo.Deploy, "k8s", "overlays");

    private static readonly ConcurrentDictionary<string, Lazy<Task<IReadOnlyList<JsonObject>>>> Rendered = new();

    public static IEnumerable<string> Overlays() =>
        Directory.GetDirectories(OverlaysDir)
            .Where(d => File.Exists(Path.Combine(d, "kustomization.yaml")))
            .Select(Path.GetFileName)
            .Order(StringComparer.Ordinal)!;

    public static TheoryData<string> OverlayData()
    {
        var data = new TheoryData<string>();
        foreach (var overlay in Overlays())
        {
            data.Add(overlay);
        }

        return data;
    }

    public static Task<IReadOnlyList<JsonObject>> RenderAsync(string overlay) =>
        Rendered.GetOrAdd(overlay, o => new Lazy<Task<IReadOnlyList<JsonObject>>>(() => RenderCoreAsync(o))).Value;

    private static async Task<IReadOnlyList<JsonObject>> RenderCoreAsync(string overlay)
    {
        var kubectl = Tool.Require("kubectl",
            "Install kubectl (https://kubernetes.io/docs/tasks/tools/) so the kustomize overlays can be rendered.");
        var dir = Path.Combine(OverlaysDir, overlay);
        var result = await Tool.RunAsync(kubectl, ["kustomize", dir], Repo.Root, TimeSpan.FromMinutes(1));
        Assert.True(result.ExitCode == 0, result.Describe($"kubectl kustomize {dir}"));
        return Yaml.LoadAll(result.Stdout);
    }

    public static string Describe(JsonObject obj) =>
        $"{obj["kind"]}/{obj["metadata"]?["name"]}";

    public static IEnumerable<JsonObject> OfKind(this IEnumerable<JsonObject> objects, string kind) =>
        objects.Where(o => (string?)o["kind"] == kind);

    public static JsonObject Single(this IEnumerable<JsonObject> objects, string kind, string name) =>
        Assert.Single(objects, o => (string?)o["kind"] == kind && (string?)o["metadata"]?["name"] == name);
}
