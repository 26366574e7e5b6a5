using System.Text.Json.Nodes;
using Gateway.Deploy.Tests.Infrastructure;
using Gateway.Deploy.Tests.K8s;

namespace Gateway.Deploy.Tests.Prometheus;

[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class PromtoolTests
{
    private static string Promtool() => Tool.Require("promtool",
        "It comes with the Debian package `prometheus` (tests/run installs it: apt-get install -y prometheus).");

    [Fact]
    public async Task RulesFile_PromtoolCheckRules_Passes()
    {
        var result = await Tool.RunAsync(Promtool(), ["check", "rules", "deploy/prometheus/rules.yml"], Repo.Root, TimeSpan.FromMinutes(1));
        Assert.True(result.ExitCode == 0, result.Describe("promtool check rules deploy/prometheus/rules.yml"));
    }

    [Fact]
    public async Task ScrapeConfig_PromtoolCheckConfig_Passes()
    {
        var result = await Tool.RunAsync(Promtool(), ["check", "config", "deploy/prometheus/prometheus.yml"], Repo.Root, TimeSpan.FromMinutes(1));
        Assert.True(result.ExitCode == 0, result.Describe("promtool check config deploy/prometheus/prometheus.yml"));
    }

    [Fact]
    public void ScrapeConfig_Job_IsTheOneTheAlertsSelect()
    {
        var config = Yaml.LoadFile(Repo.PathOf("deploy/prometheus/prometheus.yml"));
        Assert.Contains(config["scrape_configs"]!.AsArray(), job => (string?)job!["job_name"] == "llm-gateway");
        Assert.Contains(RuleFiles.Expressions(), e => e.Contains("up{job=\"llm-gateway\"}", StringComparison.Ordinal));
    }

    [Fact]
    public void RulesFile_HasTheIssuesAlerts()
    {
        var alerts = RuleFiles.Rules().Select(r => (string?)r["alert"]).ToList();
        Assert.Equal(
            ["LlmGatewayDown", "LlmGatewayUpstreamErrorRatioHigh", "LlmGatewayCancellationLatencyHigh",
             "LlmGatewayRateLimitRejectionsSurge", "LlmGatewayRedisUnavailable", "LlmGatewayNoHealthyDestination", "LlmGatewayFailoverRetriesHigh",
             "LlmGatewayResumeBoundsHit"],
            alerts);
    }

    [Fact]
    public async Task PrometheusRule_InMonitoringComponent_CarriesRulesFileGroups()
    {
        var rendered = await Kustomize.RenderAsync("ha-monitoring");
        var rule = rendered.Single("PrometheusRule", "llm-gateway");
        var expected = RuleFiles.Load()["groups"]!;
        var actual = rule["spec"]!["groups"]!;
        Assert.True(JsonNode.DeepEquals(expected, actual),
            "deploy/k8s/components/monitoring/prometheusrule.yaml differs from deploy/prometheus/rules.yml; " +
            "its spec.groups should be rules.yml's groups, verbatim.\nrules.yml:\n" + expected.ToJsonString() + "\nPrometheusRule:\n" + actual.ToJsonString());
    }
}

internal static class RuleFiles
{
    public static JsonObject Load() => Yaml.LoadFile(Repo.PathOf("deploy/prometheus/rules.yml"));

    public static IEnumerable<JsonObject> Rules() =>
        Load()["groups"]!.AsArray().SelectMany(g => g!["rules"]!.AsArray()).Select(r => r!.AsObject());

    public static IEnumerable<string> Expressions() => Rules().Select(r => (string)r["expr"]!);
}
