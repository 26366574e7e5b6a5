using System.Text.Json;
using System.Text.Json.Nodes;

namespace Gateway.Deploy.Tests.K8s;

/// <summary>prometheus-operator's ServiceMonitor and PrometheusRule (monitoring.coreos.com/v1), reduced
/// to the fields these manifests may use: required fields must be there, anything else is unknown.</summary>
internal static class CrdSchemas
{
    public static readonly Dictionary<string, Shape> ByKind = new()
    {
        ["monitoring.coreos.com/v1 ServiceMonitor"] = Document(Obj(
            Req("selector", LabelSelector),
            Req("endpoints", List(Obj(
                Req("port", Str),
                Opt("path", Str),
                Opt("scheme", Str),
                Opt("interval", Duration),
                Opt("scrapeTimeout", Duration),
                Opt("honorLabels", Bool)))),
            Opt("jobLabel", Str),
            Opt("namespaceSelector", Obj(Opt("matchNames", List(Str)), Opt("any", Bool))))),

        ["monitoring.coreos.com/v1 PrometheusRule"] = Document(Obj(
            Req("groups", List(Obj(
                Req("name", Str),
                Opt("interval", Duration),
                Req("rules", List(new Rule()))))))),
    };

    private static Shape LabelSelector => Obj(Opt("matchLabels", Map(Str)), Opt("matchExpressions", List(Obj(
        Req("key", Str), Req("operator", Str), Opt("values", List(Str))))));

    private static Shape Document(Shape spec) => Obj(
        Req("apiVersion", Str),
        Req("kind", Str),
        Req("metadata", Obj(Req("name", Str), Opt("namespace", Str), Opt("labels", Map(Str)), Opt("annotations", Map(Str)))),
        Req("spec", spec));

    private static Shape Str => new Scalar(JsonValueKind.String);
    private static Shape Bool => new Scalar(JsonValueKind.True);
    private static Shape Duration => new Scalar(JsonValueKind.String, @"^([0-9]+(ms|s|m|h|d|w|y))+$");

    private static Field Req(string name, Shape shape) => new(name, true, shape);
    private static Field Opt(string name, Shape shape) => new(name, false, shape);
    private static Shape Obj(params Field[] fields) => new ObjectShape(fields);
    private static Shape List(Shape item) => new ListShape(item);
    private static Shape Map(Shape value) => new MapShape(value);

    internal sealed record Field(string Name, bool Required, Shape Shape);

    internal abstract class Shape
    {
        public abstract void Check(JsonNode? node, string path, List<string> errors);
    }

    private sealed class Scalar(JsonValueKind kind, string? pattern = null) : Shape
    {
        public override void Check(JsonNode? node, string path, List<string> errors)
        {
            var actual = node?.GetValueKind();
            var ok = kind == JsonValueKind.True ? actual is JsonValueKind.True or JsonValueKind.False : actual == kind;
            if (!ok)
            {
                errors.Add($"{path}: expected {(kind == JsonValueKind.True ? "a boolean" : kind.ToString().ToLowerInvariant())}, found {actual?.ToString() ?? "null"}");
            }
            else if (pattern is not null && !System.Text.RegularExpressions.Regex.IsMatch(node!.GetValue<string>(), pattern))
            {
                errors.Add($"{path}: '{node}' does not match {pattern}");
            }
        }
    }

    private sealed class ObjectShape(Field[] fields) : Shape
    {
        public override void Check(JsonNode? node, string path, List<string> errors)
        {
            if (node is not JsonObject obj)
            {
                errors.Add($"{path}: expected an object");
                return;
            }

            foreach (var field in fields)
            {
                if (obj.TryGetPropertyValue(field.Name, out var value))
                {
                    field.Shape.Check(value, $"{path}.{field.Name}", errors);
                }
                else if (field.Required)
                {
                    errors.Add($"{path}.{field.Name}: required");
                }
            }

            foreach (var (name, _) in obj)
            {
                if (!fields.Any(f => f.Name == name))
                {
                    errors.Add($"{path}.{name}: unknown field");
                }
            }
        }
    }

    private sealed class ListShape(Shape item) : Shape
    {
        public override void Check(JsonNode? node, string path, List<string> errors)
        {
            if (node is not JsonArray array || array.Count == 0)
            {
                errors.Add($"{path}: expected a non-empty list");
                return;
            }

            for (var i = 0; i < array.Count; i++)
            {
                item.Check(array[i], $"{path}[{i}]", errors);
            }
        }
    }

    private sealed class MapShape(Shape value) : Shape
    {
        public override void Check(JsonNode? node, string path, List<string> errors)
        {
            if (node is not JsonObject obj)
            {
                errors.Add($"{path}: expected a map");
                return;
            }

            foreach (var (key, v) in obj)
            {
                value.Check(v, $"{path}.{key}", errors);
            }
        }
    }

    /// <summary>A Prometheus rule: exactly one of alert/record, an expression, and the optional fields.</summary>
    private sealed class Rule : Shape
    {
        private static Shape Fields => Obj(
            Opt("alert", Str),
            Opt("record", Str),
            Req("expr", Str),
            Opt("for", Duration),
            Opt("keep_firing_for", Duration),
            Opt("labels", Map(Str)),
            Opt("annotations", Map(Str)));

        public override void Check(JsonNode? node, string path, List<string> errors)
        {
            Fields.Check(node, path, errors);
            if (node is JsonObject obj && obj.ContainsKey("alert") == obj.ContainsKey("record"))
            {
                errors.Add($"{path}: a rule has exactly one of 'alert' and 'record'");
            }
        }
    }
}
