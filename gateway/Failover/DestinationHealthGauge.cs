using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Telemetry;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace Gateway.Failover;

/// <summary>
/// <c>llm_gateway.upstream.destinations</c>: each cluster's destinations by health (<c>healthy</c>, <c>unhealthy</c>,
/// <c>unknown</c>: not checked yet, or back from a reactivation period), as YARP's active and passive checks see
/// them. A cluster whose destinations are all <c>unhealthy</c> can only answer by luck; the rules alert on it.
/// </summary>
internal sealed class DestinationHealthGauge
{
    public DestinationHealthGauge(IMeterFactory meters, IProxyStateLookup proxy)
    {
        var meter = meters.Create(GatewayMetrics.MeterName);
        meter.CreateObservableGauge("llm_gateway.upstream.destinations", () => Observe(proxy), "{destination}",
            "Destinations of each cluster by health (healthy, unhealthy, unknown), as YARP's active and passive health checks see them.");
    }

    private static IEnumerable<Measurement<int>> Observe(IProxyStateLookup proxy)
    {
        foreach (var cluster in proxy.GetClusters())
        {
            int healthy = 0, unhealthy = 0, unknown = 0;
            foreach (var destination in cluster.DestinationsState.AllDestinations)
            {
                var (active, passive) = (destination.Health.Active, destination.Health.Passive);
                if (active == DestinationHealth.Unhealthy || passive == DestinationHealth.Unhealthy)
                {
                    unhealthy++;
                }
                else if (active == DestinationHealth.Healthy || passive == DestinationHealth.Healthy)
                {
                    healthy++;
                }
                else
                {
                    unknown++;
                }
            }

            yield return new(healthy, new TagList { { "cluster", cluster.ClusterId }, { "health", "healthy" } });
            yield return new(unhealthy, new TagList { { "cluster", cluster.ClusterId }, { "health", "unhealthy" } });
            yield return new(unknown, new TagList { { "cluster", cluster.ClusterId }, { "health", "unknown" } });
        }
    }
}
