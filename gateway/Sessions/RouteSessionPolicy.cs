using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Sessions;

/// <summary>
/// Session streaming, switched on per YARP route through its <c>Metadata</c>:
/// <c>"SessionStreams": "true"</c>, and optionally <c>"SessionStreams.Header": "X-Conversation-Id"</c>
/// and <c>"SessionStreams.CancelPolicy": "Drain"</c>, <c>"SessionStreams.Affinity": "true"</c> (a session's
/// requests go to one destination of the cluster: <see cref="Gateway.Affinity.SessionKeyAffinityPolicy"/>).
/// </summary>
internal sealed class RouteSessionPolicy
{
    public const string EnabledKey = "SessionStreams";
    public const string HeaderKey = "SessionStreams.Header";
    public const string CancelPolicyKey = "SessionStreams.CancelPolicy";
    public const string SourcesKey = "SessionStreams.Sources";
    public const string AffinityKey = "SessionStreams.Affinity";

    private static readonly ConditionalWeakTable<RouteConfig, RouteSessionPolicy> Cache = new();
    private static readonly RouteSessionPolicy Disabled = new(false, null, CancelPolicy.Abort, affinity: false);

    private RouteSessionPolicy(bool enabled, KeySource[]? sources, CancelPolicy cancelPolicy, bool affinity)
    {
        Enabled = enabled;
        Sources = sources;
        CancelPolicy = cancelPolicy;
        Affinity = affinity;
    }

    /// <summary>Requests with the same session key go to the same destination of the route's cluster while it is healthy.</summary>
    public bool Affinity { get; }

    /// <summary>The route's own key sources, or null for <c>Gateway:Sessions:Sources</c>.</summary>
    public KeySource[]? Sources { get; }

    /// <summary>What a cancelled stream does upstream: abort it (default), or release the client and
    /// read the upstream to its end, for providers that bill generated tokens anyway.</summary>
    public CancelPolicy CancelPolicy { get; }

    public bool Enabled { get; }

    /// <summary>The policy for a route; parsed once per route configuration object.</summary>
    public static RouteSessionPolicy For(RouteConfig route) =>
        Cache.GetValue(route, static r => Parse(r, out var policy) is null ? policy : Disabled);

    /// <summary>Parses the route's metadata; returns an error message naming the key when it is invalid.</summary>
    public static string? Parse(RouteConfig route, out RouteSessionPolicy policy)
    {
        policy = Disabled;
        var metadata = route.Metadata;
        if (metadata is null)
        {
            return null;
        }

        var affinity = false;
        if (metadata.TryGetValue(AffinityKey, out var affinityText) && !bool.TryParse(affinityText, out affinity))
        {
            return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{AffinityKey} must be 'true' or 'false', not '{affinityText}'.";
        }

        if (!metadata.TryGetValue(EnabledKey, out var enabledText))
        {
            return affinity ? $"ReverseProxy:Routes:{route.RouteId}:Metadata:{AffinityKey} needs {EnabledKey} 'true': the session key comes from it." : null;
        }

        if (!bool.TryParse(enabledText, out var enabled))
        {
            return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{EnabledKey} must be 'true' or 'false', not '{enabledText}'.";
        }

        if (affinity && !enabled)
        {
            return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{AffinityKey} needs {EnabledKey} 'true': the session key comes from it.";
        }

        KeySource[]? sources = null;
        if (metadata.TryGetValue(HeaderKey, out var headerText))
        {
            if (!KeySource.IsToken(headerText))
            {
                return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{HeaderKey} must be an HTTP header name, not '{headerText}'.";
            }

            sources = [new KeySource(KeySourceKind.Header, headerText)];
        }

        if (metadata.TryGetValue(SourcesKey, out var sourcesText))
        {
            if (KeySource.TryParseList(sourcesText.Split(','), out var parsed) is { } error)
            {
                return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{SourcesKey}: {error}";
            }

            sources = parsed;
        }

        var cancelPolicy = CancelPolicy.Abort;
        if (metadata.TryGetValue(CancelPolicyKey, out var policyText)
            && !(Enum.TryParse(policyText, ignoreCase: true, out cancelPolicy) && Enum.IsDefined(cancelPolicy)))
        {
            return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{CancelPolicyKey} must be 'Abort' or 'Drain', not '{policyText}'.";
        }

        policy = enabled ? new RouteSessionPolicy(true, sources, cancelPolicy, affinity) : Disabled;
        return null;
    }
}

internal enum CancelPolicy
{
    /// <summary>Abort the upstream request at once, so the backend stops generating.</summary>
    Abort,
    /// <summary>Release the client at once but read the upstream response to its end, for exact usage.</summary>
    Drain,
}
