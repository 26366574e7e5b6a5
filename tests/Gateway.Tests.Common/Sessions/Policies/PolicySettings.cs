using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Sessions.Policies;

internal static class PolicySettings
{
    /// <summary>Sets <c>SessionStreams.{name}</c> on the one route of a test's settings, whatever its id.</summary>
    public static void Set(Dictionary<string, string?> settings, string name, string value)
    {
        var enabled = settings.Keys.Single(k => k.StartsWith("ReverseProxy:Routes:", StringComparison.Ordinal)
            && k.EndsWith(":Metadata:SessionStreams", StringComparison.Ordinal));
        settings[$"{enabled}.{name}"] = value;
    }

    /// <summary>The error a refused request's JSON body names, in its API's shape: Anthropic Messages carries its
    /// kind as <c>error.type</c>; the OpenAI APIs carry <c>error.code</c> (and <c>error.type</c>).</summary>
    public static string? ErrorName(string api, string body)
    {
        using var json = JsonDocument.Parse(body);
        var root = json.RootElement;
        if (api == "messages")
        {
            Assert.Equal("error", root.GetProperty("type").GetString());
            return root.GetProperty("error").GetProperty("type").GetString();
        }

        return root.GetProperty("error").GetProperty("code").GetString();
    }
}

/// <summary>A gateway and mock (<see cref="Infrastructure.Stack"/>) with the metrics of its route recorded.</summary>
internal sealed class PolicyStack(Stack stack, MetricRecorder metrics) : IAsyncDisposable
{
    public Stack Stack => stack;

    public MetricRecorder Metrics => metrics;

    public HttpClient Client => stack.Client;

    public async ValueTask DisposeAsync()
    {
        await stack.DisposeAsync();
        metrics.Dispose();
    }
}
