using System.Buffers;
using System.Net.ServerSentEvents;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using MockLlm;
using MockLlm.Generation;

// Not Gateway.Tests.MockLlm: that namespace would capture the name MockLlm for every test under
// Gateway.Tests that writes MockLlm.MockLlmOptions.
namespace Gateway.Tests.MockLlm;

internal static class MockApi
{
    public const string CompletionTokens = "X-Mock-Completion-Tokens";

    /// <summary>The mock's answer to <paramref name="prompt"/>, from its own token script.</summary>
    public static string ExpectedText(string prompt, int tokens)
    {
        var text = new ArrayBufferWriter<byte>();
        TokenScript.ForPrompt(prompt).WriteText(text, tokens);
        return Encoding.UTF8.GetString(text.WrittenSpan);
    }

    public static int PromptTokens(string prompt) => TokenScript.ForPrompt(prompt).PromptTokens;

    public static string NewSessionId() => "t-" + Guid.NewGuid().ToString("N");

    public static HttpRequestMessage Post(string path, string json, string? sessionId, params (string Name, string Value)[] headers)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (sessionId is not null)
        {
            request.Headers.Add("X-Session-Id", sessionId);
        }

        foreach (var (name, value) in headers)
        {
            request.Headers.Add(name, value);
        }

        return request;
    }

    /// <summary>Every event of an SSE body, parsed as a client would parse it.</summary>
    public static async Task<List<SseItem<string>>> ReadEventsAsync(Stream body)
    {
        var events = new List<SseItem<string>>();
        await foreach (var item in SseParser.Create(body).EnumerateAsync())
        {
            events.Add(item);
        }

        return events;
    }

    /// <summary>The entry for <paramref name="sessionId"/> once it has ended: a client can read the end
    /// of a response before the mock has closed its books on it.</summary>
    public static async Task<LedgerEntry> EndedEntryAsync(MockLlmServer mock, string sessionId)
    {
        var entries = await mock.Ledger.WaitForAsync(all => all.Any(e => e.SessionId == sessionId && e.EndedAt is not null), Wait.Timeout);
        return entries.Single(e => e.SessionId == sessionId);
    }

    public static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement;
}
