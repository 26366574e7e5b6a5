using System.Globalization;

namespace Gateway.Tests.Infrastructure;

/// <summary>The requests of the resume tests: a Chat Completions stream of a known length, its resume with
/// <c>Last-Event-ID</c> (the re-sent POST, or EventSource's GET), and the check that events count 1, 2, 3…</summary>
internal static class ResumeRequests
{
    public static HttpRequestMessage ChatStream(string session, int tokens, int tokensPerSecond = 40, string? authorization = null) =>
        StreamReading.ChatRequest("/v1/chat/completions", "tell me more", session, maxTokens: 4096, authorization: authorization,
            headers: new Dictionary<string, string>
            {
                ["X-Mock-Completion-Tokens"] = tokens.ToString(CultureInfo.InvariantCulture),
                ["X-Mock-Tokens-Per-Second"] = tokensPerSecond.ToString(CultureInfo.InvariantCulture),
            });

    public static HttpRequestMessage ResumeRequest(string session, string lastEventId, bool get = false, string? authorization = null)
    {
        var request = get ? new HttpRequestMessage(HttpMethod.Get, "/v1/chat/completions") : ChatStream(session, tokens: 3, authorization: authorization);
        if (get)
        {
            request.Headers.TryAddWithoutValidation("X-Session-Id", session);
            if (authorization is not null)
            {
                request.Headers.TryAddWithoutValidation("Authorization", authorization);
            }
        }

        request.Headers.TryAddWithoutValidation("Last-Event-ID", lastEventId);
        return request;
    }

    /// <summary>Every event has the gateway's id of one stream, and the ids count 1, 2, 3… across the connections:
    /// no gap, no duplicate.</summary>
    public static void AssertContiguous(List<SseEvent> events)
    {
        Assert.All(events, e => Assert.False(string.IsNullOrEmpty(e.Id), "every event carries an id"));
        var streamPart = events[0].Id![..events[0].Id!.IndexOf('.')];
        Assert.All(events, e => Assert.StartsWith(streamPart + ".", e.Id, StringComparison.Ordinal));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Sequence));
    }
}
