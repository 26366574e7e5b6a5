using System.Globalization;
using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Sessions;

/// <summary>
/// Session streaming, switched on per YARP route through its <c>Metadata</c>:
/// <c>"SessionStreams": "true"</c>, and optionally <c>"SessionStreams.Header": "X-Conversation-Id"</c>
/// and <c>"SessionStreams.CancelPolicy": "Drain"</c>; what a newer request does
/// (<c>"SessionStreams.OnNewer": "reject"</c>), a debounce window (<c>"SessionStreams.Debounce": "00:00:00.300"</c>)
/// exact usage asked of OpenAI-compatible servers (<c>"SessionStreams.IncludeUsage": "true"</c>) and session
/// affinity (<c>"SessionStreams.Affinity": "true"</c>: Affinity/SessionKeyAffinityPolicy).
/// </summary>
internal sealed class RouteSessionPolicy
{
    public const string EnabledKey = "SessionStreams";
    public const string HeaderKey = "SessionStreams.Header";
    public const string CancelPolicyKey = "SessionStreams.CancelPolicy";
    public const string SourcesKey = "SessionStreams.Sources";
    public const string OnNewerKey = "SessionStreams.OnNewer";
    public const string DebounceKey = "SessionStreams.Debounce";
    public const string IncludeUsageKey = "SessionStreams.IncludeUsage";
    public const string AffinityKey = "SessionStreams.Affinity";
    public const string ResumeKey = "SessionStreams.Resume";

    /// <summary>The longest debounce window a route may set: a held request keeps its client waiting.</summary>
    public static readonly TimeSpan MaxDebounce = TimeSpan.FromSeconds(10);

    /// <summary>The longest resume window a route may set: a detached stream generates for nobody that long.</summary>
    public static readonly TimeSpan MaxResumeWindow = TimeSpan.FromMinutes(10);

    private static readonly ConditionalWeakTable<RouteConfig, RouteSessionPolicy> Cache = new();
    private static readonly RouteSessionPolicy Disabled = new();

    private RouteSessionPolicy()
    {
    }

    public bool Enabled { get; private init; }

    /// <summary>What a newer request with the key of an active stream does: supersede it (default), or be refused.</summary>
    public OnNewer OnNewer { get; private init; }

    /// <summary>How long a keyed request waits before it goes upstream, so that a newer one inside the window
    /// replaces it before the model server sees it; zero (default) for no wait.</summary>
    public TimeSpan Debounce { get; private init; }

    /// <summary>The resume window (<c>SessionStreams.Resume</c>): a stream whose client goes away without a stop
    /// keeps generating this long, and a request with its <c>Last-Event-ID</c> gets the rest; null (default) for
    /// abort at once.</summary>
    public TimeSpan? Resume { get; private init; }

    /// <summary>Requests with the same session key go to the same destination of the route's cluster while it is healthy.</summary>
    public bool Affinity { get; private init; }

    /// <summary>The route's own key sources, or null for <c>Gateway:Sessions:Sources</c>.</summary>
    public KeySource[]? Sources { get; private init; }

    /// <summary>What a cancelled stream does upstream: abort it (default), or release the client and
    /// read the upstream to its end, for providers that bill generated tokens anyway.</summary>
    public CancelPolicy CancelPolicy { get; private init; }

    /// <summary>Streaming Chat Completions and Completions requests that did not ask for usage are sent with
    /// <c>stream_options.include_usage</c>, so the accounting gets the upstream's exact count; the extra usage
    /// chunk is taken out of the client's stream again.</summary>
    public bool IncludeUsage { get; private init; }

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

        if (ParseFlag(route, AffinityKey, out var affinity) is { } affinityError)
        {
            return affinityError;
        }

        if (!metadata.ContainsKey(EnabledKey))
        {
            return affinity ? $"ReverseProxy:Routes:{route.RouteId}:Metadata:{AffinityKey} needs {EnabledKey} 'true': the session key comes from it." : null;
        }

        if (ParseFlag(route, EnabledKey, out var enabled) is { } enabledError)
        {
            return enabledError;
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
                return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{HeaderKey} must be an HTTP header name, not '{Shown(headerText)}'.";
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
            return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{CancelPolicyKey} must be 'Abort' or 'Drain', not '{Shown(policyText)}'.";
        }

        var onNewer = OnNewer.Supersede;
        if (metadata.TryGetValue(OnNewerKey, out var onNewerText))
        {
            if (string.Equals(onNewerText, "supersede", StringComparison.OrdinalIgnoreCase))
            {
                onNewer = OnNewer.Supersede;
            }
            else if (string.Equals(onNewerText, "reject", StringComparison.OrdinalIgnoreCase))
            {
                onNewer = OnNewer.Reject;
            }
            else
            {
                return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{OnNewerKey} must be 'supersede' or 'reject', not '{Shown(onNewerText)}'.";
            }
        }

        var debounce = TimeSpan.Zero;
        if (metadata.TryGetValue(DebounceKey, out var debounceText)
            && !(TimeSpan.TryParseExact(debounceText, "c", CultureInfo.InvariantCulture, out debounce)
                && debounce > TimeSpan.Zero && debounce <= MaxDebounce))
        {
            return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{DebounceKey} must be a time span above 00:00:00 and at most "
                + $"{MaxDebounce:c} (such as 00:00:00.300), not '{Shown(debounceText)}'.";
        }

        if (ParseFlag(route, IncludeUsageKey, out var includeUsage) is { } includeUsageError)
        {
            return includeUsageError;
        }

        TimeSpan? resume = null;
        if (metadata.TryGetValue(ResumeKey, out var resumeText))
        {
            if (!(TimeSpan.TryParseExact(resumeText, "c", CultureInfo.InvariantCulture, out var window)
                && window > TimeSpan.Zero && window <= MaxResumeWindow))
            {
                return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{ResumeKey} must be a time span above 00:00:00 and at most "
                    + $"{MaxResumeWindow:c} (such as 00:00:30), not '{Shown(resumeText)}'.";
            }

            if (cancelPolicy == CancelPolicy.Drain)
            {
                return $"ReverseProxy:Routes:{route.RouteId}:Metadata:{ResumeKey} cannot be set with {CancelPolicyKey} 'Drain': "
                    + "a resumable stream keeps its upstream while detached and aborts it when the window ends.";
            }

            resume = window;
        }

        policy = !enabled ? Disabled : new RouteSessionPolicy
        {
            Enabled = true,
            Sources = sources,
            CancelPolicy = cancelPolicy,
            OnNewer = onNewer,
            Debounce = debounce,
            IncludeUsage = includeUsage,
            Affinity = affinity,
            Resume = resume,
        };
        return null;
    }

    /// <summary>A <c>true</c>/<c>false</c> metadata value; absent is false.</summary>
    private static string? ParseFlag(RouteConfig route, string key, out bool value)
    {
        value = false;
        return route.Metadata!.TryGetValue(key, out var text) && !bool.TryParse(text, out value)
            ? $"ReverseProxy:Routes:{route.RouteId}:Metadata:{key} must be 'true' or 'false', not '{Shown(text)}'."
            : null;
    }

    /// <summary>A metadata value as an error message may show it: short, and without control characters.</summary>
    private static string Shown(string? value)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "";
        }

        var shown = value.Length > 64 ? value[..64] + "..." : value;
        return string.Create(shown.Length, shown, static (span, text) =>
        {
            for (var i = 0; i < text.Length; i++)
            {
                span[i] = char.IsControl(text[i]) ? '?' : text[i];
            }
        });
    }
}

/// <summary>What a newer request with the session key of an active stream does (<c>SessionStreams.OnNewer</c>).</summary>
internal enum OnNewer
{
    /// <summary>The newer request takes the session: the active stream is cancelled with a superseded notice.</summary>
    Supersede,
    /// <summary>The active stream runs on: the newer request is refused with <c>409 session_busy</c>.</summary>
    Reject,
}

internal enum CancelPolicy
{
    /// <summary>Abort the upstream request at once, so the backend stops generating.</summary>
    Abort,
    /// <summary>Release the client at once but read the upstream response to its end, for exact usage.</summary>
    Drain,
}
