namespace Gateway.Chat;

/// <summary>The demo chat page at <c>/chat/</c>. Bound from <c>Gateway:Chat</c>.</summary>
internal sealed class ChatOptions
{
    public const string SectionName = "Gateway:Chat";

    /// <summary>Serves the page at <c>/chat/</c> when true. Off by default (and in the shipped
    /// appsettings.json): the page calls the gateway without credentials and its SSE mode uses the
    /// mock's seed route, so it is a demo for Development, not something to expose in front of a
    /// real backend. When off, <c>/chat/</c> is not answered by the gateway and falls through to
    /// the proxy like any other path.</summary>
    public bool Enabled { get; set; }
}
