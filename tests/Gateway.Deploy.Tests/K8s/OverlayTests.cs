using System.Text.Json.Nodes;
using k8s.Models;

namespace Gateway.Deploy.Tests.K8s;

/// <summary>Every overlay renders, and every object it renders is valid for its kind, offline.</summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class OverlayTests
{
    public static TheoryData<string> Overlays => Kustomize.OverlayData();

    [Fact]
    public void Overlays_List_TheDocumentedOnes()
    {
        Assert.Equal(["ha", "ha-monitoring", "single"], Kustomize.Overlays());
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Overlay_Rendered_EveryObjectMatchesItsKindsSchema(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        Assert.NotEmpty(objects);

        var errors = new List<string>();
        foreach (var obj in objects)
        {
            var apiVersion = (string?)obj["apiVersion"] ?? "";
            var kind = (string?)obj["kind"] ?? "";
            if (KubeModels.TryGetType(apiVersion, kind, out var type))
            {
                try
                {
                    KubeModels.Read(obj, type);
                }
                catch (Exception e)
                {
                    errors.Add($"{Kustomize.Describe(obj)} ({apiVersion}): {(e.InnerException ?? e).Message}");
                }
            }
            else if (CrdSchemas.ByKind.TryGetValue($"{apiVersion} {kind}", out var shape))
            {
                shape.Check(obj, Kustomize.Describe(obj), errors);
            }
            else
            {
                errors.Add($"{Kustomize.Describe(obj)}: no schema for {apiVersion} {kind}");
            }
        }

        Assert.True(errors.Count == 0, $"overlay {overlay}:\n" + string.Join('\n', errors));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Overlay_Rendered_EveryNamespacedObjectIsInTheGatewayNamespace(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        var stray = objects
            .Where(o => (string?)o["kind"] != "Namespace" && (string?)o["metadata"]?["namespace"] != "llm-gateway")
            .Select(Kustomize.Describe)
            .ToList();
        Assert.True(stray.Count == 0, $"not in namespace llm-gateway: {string.Join(", ", stray)}");
        Assert.Single(objects.OfKind("Namespace"));
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Overlay_Rendered_ServicesSelectPodsAndConfigMapsResolve(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        var deployments = objects.OfKind("Deployment").Select(KubeModels.Read<V1Deployment>).ToList();
        var configMaps = objects.OfKind("ConfigMap").Select(o => (string)o["metadata"]!["name"]!).ToHashSet();

        foreach (var service in objects.OfKind("Service").Select(KubeModels.Read<V1Service>))
        {
            var target = deployments.SingleOrDefault(d =>
                service.Spec.Selector.All(s => d.Spec.Template.Metadata.Labels.TryGetValue(s.Key, out var v) && v == s.Value));
            Assert.True(target is not null, $"Service {service.Metadata.Name} selects no Deployment's pods");
            foreach (var port in service.Spec.Ports)
            {
                Assert.Contains(target!.Spec.Template.Spec.Containers.SelectMany(c => c.Ports), p => p.Name == port.TargetPort.Value);
            }
        }

        foreach (var container in deployments.SelectMany(d => d.Spec.Template.Spec.Containers))
        {
            foreach (var from in container.EnvFrom ?? [])
            {
                Assert.Contains(from.ConfigMapRef.Name, configMaps);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Overlay_Rendered_EveryContainerIsRestrictedAndBounded(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        foreach (var deployment in objects.OfKind("Deployment").Select(KubeModels.Read<V1Deployment>))
        {
            var pod = deployment.Spec.Template.Spec;
            Assert.True(pod.SecurityContext?.RunAsNonRoot == true, $"{deployment.Metadata.Name}: runAsNonRoot");
            Assert.False(pod.AutomountServiceAccountToken ?? true, $"{deployment.Metadata.Name}: service account token mounted");
            foreach (var c in pod.Containers)
            {
                var name = $"{deployment.Metadata.Name}/{c.Name}";
                Assert.True(c.SecurityContext?.ReadOnlyRootFilesystem == true, $"{name}: readOnlyRootFilesystem");
                Assert.True(c.SecurityContext?.AllowPrivilegeEscalation == false, $"{name}: allowPrivilegeEscalation");
                Assert.Equal(["ALL"], c.SecurityContext?.Capabilities?.Drop ?? []);
                Assert.True(c.Resources?.Requests?.ContainsKey("cpu") == true && c.Resources.Requests.ContainsKey("memory"), $"{name}: requests");
                Assert.True(c.Resources?.Limits?.ContainsKey("memory") == true, $"{name}: memory limit");
                Assert.NotNull(c.LivenessProbe);
                Assert.NotNull(c.ReadinessProbe);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Gateway_Rendered_ProbesHealthEndpointsAndOutlastsTheDrainDeadline(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        var deployment = KubeModels.Read<V1Deployment>(objects.Single("Deployment", "llm-gateway"));
        var pod = deployment.Spec.Template.Spec;
        var gateway = Assert.Single(pod.Containers);

        Assert.Equal("/healthz", gateway.LivenessProbe.HttpGet.Path);
        Assert.Equal("/readyz", gateway.ReadinessProbe.HttpGet.Path);
        Assert.Equal(8080, Assert.Single(gateway.Ports).ContainerPort);

        var config = Env(objects, gateway);
        var drain = TimeSpan.Parse(config["Gateway__Shutdown__DrainTimeout"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(pod.TerminationGracePeriodSeconds ?? 30, (long)drain.TotalSeconds + 1, (long)drain.TotalSeconds + 15);
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Gateway_Rendered_DrainsAsLongAsTheGatewayShipsWithAndLongEnoughForLongAnswers(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        var gateway = Assert.Single(KubeModels.Read<V1Deployment>(objects.Single("Deployment", "llm-gateway")).Spec.Template.Spec.Containers);
        var config = Env(objects, gateway);
        using var appsettings = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(Gateway.Deploy.Tests.Infrastructure.Repo.PathOf("gateway/appsettings.json")));
        var shipped = appsettings.RootElement.GetProperty("Gateway").GetProperty("Shutdown");

        // One window everywhere: what `dotnet run` does is what the pod does, and the grace period above is sized from it.
        Assert.Equal(shipped.GetProperty("DrainTimeout").GetString(), config["Gateway__Shutdown__DrainTimeout"]);
        Assert.Equal(shipped.GetProperty("ReadinessDelay").GetString(), config["Gateway__Shutdown__ReadinessDelay"]);
        var drain = TimeSpan.Parse(config["Gateway__Shutdown__DrainTimeout"], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(drain >= TimeSpan.FromMinutes(2), $"a drain of {drain} cuts streams of long answers and agents in every rollout");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Gateway_Rendered_PreStopMatchesTheReadinessDelayAndTheGracePeriodCoversDelayDrainAndMargin(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        var pod = KubeModels.Read<V1Deployment>(objects.Single("Deployment", "llm-gateway")).Spec.Template.Spec;
        var gateway = Assert.Single(pod.Containers);
        var config = Env(objects, gateway);
        var drain = (long)TimeSpan.Parse(config["Gateway__Shutdown__DrainTimeout"], System.Globalization.CultureInfo.InvariantCulture).TotalSeconds;
        var readiness = (long)TimeSpan.Parse(config["Gateway__Shutdown__ReadinessDelay"], System.Globalization.CultureInfo.InvariantCulture).TotalSeconds;

        // The sleep action, not exec: the image has no shell to count on.
        var preStop = gateway.Lifecycle?.PreStop;
        Assert.True(preStop?.Sleep is not null, "the gateway container needs a preStop sleep");
        Assert.Null(preStop!.Exec);
        Assert.InRange(readiness, 1, 30);
        Assert.Equal(readiness, preStop.Sleep.Seconds);

        // The grace period counts from deletion: preStop, then SIGTERM's readiness delay, then the drain,
        // then a margin (at least the 5 s the host gives the notices after the drain deadline).
        Assert.InRange(pod.TerminationGracePeriodSeconds ?? 30, preStop.Sleep.Seconds + readiness + drain + 5, preStop.Sleep.Seconds + readiness + drain + 15);
        Assert.Equal("llm", config["ReverseProxy__Routes__llm__ClusterId"]);
        Assert.StartsWith("http://", config["ReverseProxy__Clusters__llm__Destinations__primary__Address"], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Single_Rendered_OneReplicaNoAutoscalerMockBackend()
    {
        var objects = await Kustomize.RenderAsync("single");
        var deployment = KubeModels.Read<V1Deployment>(objects.Single("Deployment", "llm-gateway"));
        Assert.Equal(1, deployment.Spec.Replicas);
        Assert.Empty(objects.OfKind("HorizontalPodAutoscaler"));

        var config = Env(objects, deployment.Spec.Template.Spec.Containers[0]);
        Assert.Equal("http://mock-llm:8080/", config["ReverseProxy__Clusters__llm__Destinations__primary__Address"]);
        Assert.False(config.ContainsKey("Gateway__Sessions__Redis"));
        objects.Single("Service", "mock-llm");
    }

    [Theory]
    [InlineData("ha")]
    [InlineData("ha-monitoring")]
    public async Task Ha_Rendered_ThreeReplicasRedisAndDisruptionBudget(string overlay)
    {
        var objects = await Kustomize.RenderAsync(overlay);
        var deployment = KubeModels.Read<V1Deployment>(objects.Single("Deployment", "llm-gateway"));
        Assert.Equal(3, deployment.Spec.Replicas);

        var config = Env(objects, deployment.Spec.Template.Spec.Containers[0]);
        Assert.Equal("redis:6379", config["Gateway__Sessions__Redis"]);
        objects.Single("Service", "redis");

        var pdb = KubeModels.Read<V1PodDisruptionBudget>(objects.Single("PodDisruptionBudget", "llm-gateway"));
        Assert.Equal(2, int.Parse(pdb.Spec.MinAvailable.Value, System.Globalization.CultureInfo.InvariantCulture));
        var hpa = KubeModels.Read<V2HorizontalPodAutoscaler>(objects.Single("HorizontalPodAutoscaler", "llm-gateway"));
        Assert.Equal(3, hpa.Spec.MinReplicas);
    }

    [Fact]
    public async Task HaMonitoring_Rendered_ServiceMonitorScrapesTheGatewayService()
    {
        var objects = await Kustomize.RenderAsync("ha-monitoring");
        var monitor = objects.Single("ServiceMonitor", "llm-gateway");
        var service = KubeModels.Read<V1Service>(objects.Single("Service", "llm-gateway"));

        var matchLabels = monitor["spec"]!["selector"]!["matchLabels"]!.AsObject();
        Assert.All(matchLabels, l => Assert.Equal((string?)l.Value, service.Metadata.Labels[l.Key]));
        var endpoint = Assert.Single(monitor["spec"]!["endpoints"]!.AsArray())!;
        Assert.Equal("/metrics", (string?)endpoint["path"]);
        Assert.Contains(service.Spec.Ports, p => p.Name == (string?)endpoint["port"]);
        objects.Single("PrometheusRule", "llm-gateway");
    }

    /// <summary>The container's environment: its ConfigMaps' data, then its own env entries.</summary>
    private static Dictionary<string, string> Env(IReadOnlyList<JsonObject> objects, V1Container container)
    {
        var env = new Dictionary<string, string>();
        foreach (var from in container.EnvFrom ?? [])
        {
            var map = KubeModels.Read<V1ConfigMap>(objects.Single("ConfigMap", from.ConfigMapRef.Name));
            foreach (var (k, v) in map.Data)
            {
                env[k] = v;
            }
        }

        foreach (var e in container.Env ?? [])
        {
            env[e.Name] = e.Value;
        }

        return env;
    }
}
