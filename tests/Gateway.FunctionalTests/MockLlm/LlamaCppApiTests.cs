using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.MockLlm;

/// <summary>The mock's llama.cpp <c>/completion</c>, read as SSE of partial results (NuGet serves no
/// official llama.cpp client).</summary>
public sealed class LlamaCppApiTests(MockLlmFixture fixture) : IClassFixture<MockLlmFixture>
{
    private const string Prompt = "tell me about llama";

    private static string Body(bool stream, int? nPredict = null) =>
        JsonSerializer.Serialize(new { prompt = Prompt, stream, n_predict = nPredict ?? -1 });

    private async Task<List<JsonElement>> StreamAsync(string session, int completionTokens, int? nPredict = null)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);
        using var response = await client.SendAsync(
            MockApi.Post("/completion", Body(stream: true, nPredict), session, (MockApi.CompletionTokens, $"{completionTokens}")),
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await MockApi.ReadEventsAsync(await response.Content.ReadAsStreamAsync());
        return [.. events.Select(e => MockApi.Parse(e.Data))];
    }

    [Fact]
    public async Task StreamedCompletion_PartialsCarryTheScriptedText_FinalSaysEos()
    {
        var session = MockApi.NewSessionId();

        var events = await StreamAsync(session, completionTokens: 7);

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal(("/completion", true, 7, 7, true), (entry.Path, entry.Stream, entry.TokensPlanned, entry.TokensSent, entry.Completed));
        var partials = events[..^1];
        var final = events[^1];
        Assert.Equal(entry.TokensSent, partials.Count);
        Assert.All(partials, p => Assert.False(p.GetProperty("stop").GetBoolean()));
        Assert.Equal(MockApi.ExpectedText(Prompt, 7), string.Concat(partials.Select(p => p.GetProperty("content").GetString())));
        Assert.Equal(Enumerable.Range(1, 7), partials.Select(p => p.GetProperty("tokens_predicted").GetInt32()));

        var prompt = MockApi.PromptTokens(Prompt);
        Assert.True(final.GetProperty("stop").GetBoolean());
        Assert.Equal(string.Empty, final.GetProperty("content").GetString());
        Assert.Equal("eos", final.GetProperty("stop_type").GetString());
        Assert.Equal(7, final.GetProperty("tokens_predicted").GetInt32());
        Assert.Equal(prompt, final.GetProperty("tokens_evaluated").GetInt32());
        Assert.Equal("mock-1", final.GetProperty("model").GetString());
        Assert.Equal(7, final.GetProperty("timings").GetProperty("predicted_n").GetInt32());
        Assert.Equal(prompt, final.GetProperty("timings").GetProperty("prompt_n").GetInt32());
    }

    [Fact]
    public async Task StreamedCompletion_StoppedByNPredict_FinalSaysLimit()
    {
        var session = MockApi.NewSessionId();

        var events = await StreamAsync(session, completionTokens: 10, nPredict: 3);

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((3, 3, true), (entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(4, events.Count);
        Assert.Equal("limit", events[^1].GetProperty("stop_type").GetString());
        Assert.Equal(3, events[^1].GetProperty("tokens_predicted").GetInt32());
    }

    [Fact]
    public async Task NonStreamedCompletion_ReturnsOneResultWithTheWholeContent()
    {
        var session = MockApi.NewSessionId();
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post("/completion", Body(stream: false), session, (MockApi.CompletionTokens, "5")));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((false, 5, true), (entry.Stream, entry.TokensSent, entry.Completed));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = MockApi.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(MockApi.ExpectedText(Prompt, 5), body.GetProperty("content").GetString());
        Assert.True(body.GetProperty("stop").GetBoolean());
        Assert.Equal(5, body.GetProperty("tokens_predicted").GetInt32());
        Assert.Equal("eos", body.GetProperty("stop_type").GetString());
    }

    [Theory]
    [InlineData("""{"n_predict":5}""", "\"prompt\"")]
    [InlineData("""{"prompt":"hi","stream":"yes"}""", "'stream'")]
    public async Task MalformedBody_Returns400_InLlamaCppsErrorShape(string body, string messagePart)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post("/completion", body, sessionId: null));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = MockApi.Parse(await response.Content.ReadAsStringAsync()).GetProperty("error");
        Assert.Equal(400, error.GetProperty("code").GetInt32());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(messagePart, error.GetProperty("message").GetString());
    }
}
