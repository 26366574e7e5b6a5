using System.Text.Json.Nodes;
using Gateway.Deploy.Tests.Infrastructure;
using k8s.Models;

namespace Gateway.Deploy.Tests.K8s;

/// <summary>The offline schema checks reject what a cluster would reject, so a passing overlay means something.</summary>
public sealed class SchemaCheckTests
{
    private const string Deployment = """
        apiVersion: apps/v1
        kind: Deployment
        metadata: { name: x }
        spec:
          selector: { matchLabels: { a: b } }
          template:
            metadata: { labels: { a: b } }
            spec:
              containers:
                - name: c
                  image: i
                  {0}
        """;

    [Fact]
    public void TypedModel_ValidDeployment_Reads()
    {
        var obj = Yaml.LoadAll(Deployment.Replace("{0}", "imagePullPolicy: IfNotPresent", StringComparison.Ordinal))[0];
        Assert.Equal("i", KubeModels.Read<V1Deployment>(obj).Spec.Template.Spec.Containers[0].Image);
    }

    [Theory]
    [InlineData("imagePullPolice: IfNotPresent")]
    [InlineData("readinessProbe: { httpGet: { path: /readyz, port: 8080, verb: GET } }")]
    [InlineData("ports: [ { containerPort: http } ]")]
    public void TypedModel_UnknownOrMistypedField_Throws(string field)
    {
        var obj = Yaml.LoadAll(Deployment.Replace("{0}", field, StringComparison.Ordinal))[0];
        Assert.ThrowsAny<Exception>(() => KubeModels.Read<V1Deployment>(obj));
    }

    [Theory]
    [InlineData("spec: { selector: {}, endpoints: [ { port: http, paht: /metrics } ] }", "paht: unknown field")]
    [InlineData("spec: { selector: {}, endpoints: [ { path: /metrics } ] }", "port: required")]
    [InlineData("spec: { selector: {}, endpoints: [ { port: http, interval: 15 } ] }", "interval: expected string")]
    public void CrdSchema_BadServiceMonitor_IsReported(string spec, string expected)
    {
        var obj = Yaml.LoadAll($"apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {{ name: m }}\n{spec}\n")[0];
        var errors = new List<string>();
        CrdSchemas.ByKind["monitoring.coreos.com/v1 ServiceMonitor"].Check(obj, "m", errors);
        Assert.Contains(errors, e => e.Contains(expected, StringComparison.Ordinal));
    }

    [Fact]
    public void CrdSchema_RuleWithAlertAndRecord_IsReported()
    {
        var obj = (JsonObject)JsonNode.Parse("""
            {"apiVersion":"monitoring.coreos.com/v1","kind":"PrometheusRule","metadata":{"name":"r"},
             "spec":{"groups":[{"name":"g","rules":[{"alert":"A","record":"b","expr":"up"}]}]}}
            """)!;
        var errors = new List<string>();
        CrdSchemas.ByKind["monitoring.coreos.com/v1 PrometheusRule"].Check(obj, "r", errors);
        Assert.Contains(errors, e => e.Contains("exactly one", StringComparison.Ordinal));
    }
}
