using Gateway.Protocols;

namespace Gateway.Sessions;

/// <summary>What the gateway learned about a request before limits and forwarding: its API, the facts
/// known so far (from the path and the body bytes already received), and its session key (or why it
/// has none).</summary>
internal sealed record SessionRequest(RequestFacts Facts, SessionKeyResult Key)
{
    public ApiAdapter Adapter { get; init; } = ApiAdapters.Other;

    /// <summary>When the request arrived (<see cref="TimeProvider.GetTimestamp"/>), before its body was
    /// read: claims are ordered by it.</summary>
    public long? ArrivedAt { get; init; }
}
