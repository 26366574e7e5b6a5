using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using k8s;
using k8s.Models;

namespace Gateway.Deploy.Tests.K8s;

/// <summary>Kubernetes' own schemas, offline: the KubernetesClient package's typed models, read with
/// unknown fields rejected (a misspelt or misplaced field fails instead of being dropped).</summary>
internal static class KubeModels
{
    /// <summary>"apps/v1 Deployment" → <see cref="V1Deployment"/>, for every built-in kind the package knows.</summary>
    private static readonly Dictionary<string, Type> Types = typeof(V1Deployment).Assembly.GetTypes()
        .Where(t => t.Namespace == "k8s.Models" && typeof(IKubernetesObject).IsAssignableFrom(t)
                    && t.GetField("KubeKind", BindingFlags.Public | BindingFlags.Static) is not null)
        .GroupBy(Key)
        .ToDictionary(g => g.Key, g => g.First());

    private static readonly JsonSerializerOptions Strict = new()
    {
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        Converters =
        {
            new JsonStringEnumConverter(),
            new KubernetesJson.Iso8601TimeSpanConverter(),
            new KubernetesJson.KubernetesDateTimeConverter(),
            new KubernetesJson.KubernetesDateTimeOffsetConverter(),
        },
    };

    public static bool TryGetType(string apiVersion, string kind, out Type type) =>
        Types.TryGetValue($"{apiVersion} {kind}", out type!);

    /// <summary>Reads <paramref name="obj"/> as its kind's model; throws on an unknown field, a wrong
    /// type, or a required field left out (the model's own <c>Validate()</c>).</summary>
    public static object Read(JsonObject obj, Type type)
    {
        var model = obj.Deserialize(type, Strict) ?? throw new JsonException("null document");
        type.GetMethod("Validate", Type.EmptyTypes)?.Invoke(model, null);
        return model;
    }

    public static T Read<T>(JsonObject obj) => (T)Read(obj, typeof(T));

    private static string Key(Type t)
    {
        var group = (string)t.GetField("KubeGroup")!.GetValue(null)!;
        var version = (string)t.GetField("KubeApiVersion")!.GetValue(null)!;
        var kind = (string)t.GetField("KubeKind")!.GetValue(null)!;
        return $"{(group.Length == 0 ? version : group + "/" + version)} {kind}";
    }
}
