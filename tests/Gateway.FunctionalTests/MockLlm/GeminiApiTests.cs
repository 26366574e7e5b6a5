using System.Net;
using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.MockLlm;

/// <summary>The mock's Gemini <c>generateContent</c> / <c>streamGenerateContent</c>, read the way Google's SDKs
/// read them: SSE events of <c>GenerateContentResponse</c> objects (NuGet serves no official Gemini SDK for .NET).</summary>
public sealed class GeminiApiTests(MockLlmFixture fixture) : IClassFixture<MockLlmFixture>
{
    private const string Prompt = "tell me about gemini";
    private const string Model = "gemini-2.0-flash";
    private const string StreamPath = $"/v1beta/models/{Model}:streamGenerateContent?alt=sse";

    private static string Body(int? maxOutputTokens = null) =>
        $$"""{"contents":[{"role":"user","parts":[{"text":"{{Prompt}}"}]}]{{(maxOutputTokens is { } max ? $$""","generationConfig":{"maxOutputTokens":{{max}}}""" : "")}}}""";

    private async Task<(byte[] Raw, List<JsonElement> Chunks)> StreamAsync(string session, int completionTokens, int? maxOutputTokens = null)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);
        using var response = await client.SendAsync(
            MockApi.Post(StreamPath, Body(maxOutputTokens), session, (MockApi.CompletionTokens, $"{completionTokens}")),
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        var raw = await response.Content.ReadAsByteArrayAsync();
        var events = await MockApi.ReadEventsAsync(new MemoryStream(raw));
        return (raw, [.. events.Select(e => MockApi.Parse(e.Data))]);
    }

    private static JsonElement Candidate(JsonElement chunk) => Assert.Single(chunk.GetProperty("candidates").EnumerateArray());

    private static string? FinishReason(JsonElement chunk) =>
        Candidate(chunk).TryGetProperty("finishReason", out var reason) ? reason.GetString() : null;

    private static string Text(JsonElement chunk) =>
        string.Concat(Candidate(chunk).GetProperty("content").GetProperty("parts").EnumerateArray().Select(p => p.GetProperty("text").GetString()));

    [Fact]
    public async Task StreamedAnswer_CrlfFramedChunks_CarryTheScriptedTextRunningCountsAndStop()
    {
        var session = MockApi.NewSessionId();

        var (raw, chunks) = await StreamAsync(session, completionTokens: 7);

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal(("/v1beta/models/gemini-2.0-flash:streamGenerateContent", Model, true, 7, 7, true),
            (entry.Path, entry.Model, entry.Stream, entry.TokensPlanned, entry.TokensSent, entry.Completed));

        // Google's framing: every event ends with CRLF CRLF and no bare LF appears.
        var wire = Encoding.UTF8.GetString(raw);
        Assert.EndsWith("}\r\n\r\n", wire);
        Assert.Equal(chunks.Count, wire.Split("\r\n\r\n", StringSplitOptions.RemoveEmptyEntries).Length);
        Assert.DoesNotContain("\n", wire.Replace("\r\n", string.Empty, StringComparison.Ordinal));

        Assert.Equal(entry.TokensSent, chunks.Count);
        Assert.Equal(MockApi.ExpectedText(Prompt, 7), string.Concat(chunks.Select(Text)));
        Assert.Equal(Enumerable.Range(1, 7), chunks.Select(c => c.GetProperty("usageMetadata").GetProperty("candidatesTokenCount").GetInt32()));
        var prompt = MockApi.PromptTokens(Prompt);
        Assert.All(chunks, c => Assert.Equal(prompt, c.GetProperty("usageMetadata").GetProperty("promptTokenCount").GetInt32()));
        Assert.Equal(prompt + 7, chunks[^1].GetProperty("usageMetadata").GetProperty("totalTokenCount").GetInt32());
        Assert.All(chunks, c => Assert.Equal(Model, c.GetProperty("modelVersion").GetString()));
        Assert.All(chunks[..^1], c => Assert.Null(FinishReason(c)));
        Assert.Equal("STOP", FinishReason(chunks[^1]));
        Assert.Equal("model", Candidate(chunks[^1]).GetProperty("content").GetProperty("role").GetString());
    }

    [Fact]
    public async Task StreamedAnswer_StoppedByMaxOutputTokens_LastChunkSaysMaxTokens()
    {
        var session = MockApi.NewSessionId();

        var (_, chunks) = await StreamAsync(session, completionTokens: 10, maxOutputTokens: 3);

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((3, 3, true), (entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(3, chunks.Count);
        Assert.Equal(MockApi.ExpectedText(Prompt, 3), string.Concat(chunks.Select(Text)));
        Assert.Equal("MAX_TOKENS", FinishReason(chunks[^1]));
        Assert.Equal(3, chunks[^1].GetProperty("usageMetadata").GetProperty("candidatesTokenCount").GetInt32());
    }

    [Fact]
    public async Task GenerateContent_ReturnsOneResponseWithTheWholeText()
    {
        var session = MockApi.NewSessionId();
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post(
            $"/v1beta/models/{Model}:generateContent", Body(), session, (MockApi.CompletionTokens, "5")));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((Model, false, 5, true), (entry.Model, entry.Stream, entry.TokensSent, entry.Completed));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = MockApi.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(MockApi.ExpectedText(Prompt, 5), Text(body));
        Assert.Equal("STOP", FinishReason(body));
        Assert.Equal(5, body.GetProperty("usageMetadata").GetProperty("candidatesTokenCount").GetInt32());
    }

    [Theory]
    [InlineData($"/v1beta/models/{Model}:generateContent", """{"contents":"hi"}""", 400, "INVALID_ARGUMENT", "'contents'")]
    [InlineData($"/v1beta/models/{Model}:generateContent", "{not json", 400, "INVALID_ARGUMENT", "not valid JSON")]
    [InlineData($"/v1beta/models/{Model}:streamGenerateContent", """{"contents":[]}""", 400, "INVALID_ARGUMENT", "alt=sse")]
    [InlineData($"/v1beta/models/{Model}:countTokens", """{"contents":[]}""", 404, "NOT_FOUND", "countTokens")]
    public async Task RefusedRequest_AnswersInGooglesErrorShape(string path, string body, int status, string googleStatus, string messagePart)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post(path, body, sessionId: null));

        Assert.Equal(status, (int)response.StatusCode);
        var error = MockApi.Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal(status, error.GetProperty("code").GetInt32());
        Assert.Equal(googleStatus, error.GetProperty("status").GetString());
        Assert.Contains(messagePart, error.GetProperty("message").GetString());
    }
}
