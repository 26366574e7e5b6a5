using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.MockLlm;

/// <summary>The mock's TGI <c>/generate_stream</c> and <c>/generate</c>, read as TGI's clients read them
/// (SSE of <c>StreamResponse</c> objects; NuGet serves no official TGI client).</summary>
public sealed class TgiApiTests(MockLlmFixture fixture) : IClassFixture<MockLlmFixture>
{
    private const string Prompt = "tell me about tgi";

    private static string Body(bool details, int? maxNewTokens = null) =>
        JsonSerializer.Serialize(new { inputs = Prompt, parameters = new { max_new_tokens = maxNewTokens, details } });

    private async Task<List<JsonElement>> StreamAsync(string session, int completionTokens, bool details, int? maxNewTokens = null)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);
        using var response = await client.SendAsync(
            MockApi.Post("/generate_stream", Body(details, maxNewTokens), session, (MockApi.CompletionTokens, $"{completionTokens}")),
            HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var events = await MockApi.ReadEventsAsync(await response.Content.ReadAsStreamAsync());
        return [.. events.Select(e => MockApi.Parse(e.Data))];
    }

    private static string TokenText(JsonElement streamResponse) => streamResponse.GetProperty("token").GetProperty("text").GetString()!;

    [Fact]
    public async Task StreamedAnswer_OneEventPerToken_LastCarriesTheTextAndEosDetails()
    {
        var session = MockApi.NewSessionId();

        var events = await StreamAsync(session, completionTokens: 7, details: true);

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal(("/generate_stream", null, true, 7, 7, true), (entry.Path, entry.Model, entry.Stream, entry.TokensPlanned, entry.TokensSent, entry.Completed));
        var expected = MockApi.ExpectedText(Prompt, 7);
        Assert.Equal(entry.TokensSent, events.Count);
        Assert.Equal(expected, string.Concat(events.Select(TokenText)));
        Assert.Equal(Enumerable.Range(1, 7), events.Select(e => e.GetProperty("index").GetInt32()));
        Assert.All(events, e => Assert.False(e.GetProperty("token").GetProperty("special").GetBoolean()));
        Assert.All(events[..^1], e => Assert.Equal(JsonValueKind.Null, e.GetProperty("generated_text").ValueKind));
        Assert.All(events[..^1], e => Assert.Equal(JsonValueKind.Null, e.GetProperty("details").ValueKind));

        var last = events[^1];
        Assert.Equal(expected, last.GetProperty("generated_text").GetString());
        var details = last.GetProperty("details");
        Assert.Equal("eos_token", details.GetProperty("finish_reason").GetString());
        Assert.Equal(7, details.GetProperty("generated_tokens").GetInt32());
        Assert.Equal(JsonValueKind.Null, details.GetProperty("seed").ValueKind);
    }

    [Fact]
    public async Task StreamedAnswer_StoppedByMaxNewTokens_FinishesWithLength()
    {
        var session = MockApi.NewSessionId();

        var events = await StreamAsync(session, completionTokens: 10, details: true, maxNewTokens: 3);

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((3, 3, true), (entry.TokensPlanned, entry.TokensSent, entry.Completed));
        Assert.Equal(3, events.Count);
        Assert.Equal(MockApi.ExpectedText(Prompt, 3), events[^1].GetProperty("generated_text").GetString());
        Assert.Equal("length", events[^1].GetProperty("details").GetProperty("finish_reason").GetString());
        Assert.Equal(3, events[^1].GetProperty("details").GetProperty("generated_tokens").GetInt32());
    }

    [Fact]
    public async Task StreamedAnswer_WithoutDetails_EndsWithTheTextAndNullDetails_AsTgiDoes()
    {
        var session = MockApi.NewSessionId();

        var events = await StreamAsync(session, completionTokens: 4, details: false);

        Assert.Equal(4, events.Count);
        Assert.Equal(MockApi.ExpectedText(Prompt, 4), events[^1].GetProperty("generated_text").GetString());
        Assert.Equal(JsonValueKind.Null, events[^1].GetProperty("details").ValueKind);
        Assert.True((await MockApi.EndedEntryAsync(fixture.Server, session)).Completed);
    }

    [Fact]
    public async Task Generate_ReturnsTheWholeTextAndDetailsWithEveryToken()
    {
        var session = MockApi.NewSessionId();
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post("/generate", Body(details: true), session, (MockApi.CompletionTokens, "5")));

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal(("/generate", false, 5, true), (entry.Path, entry.Stream, entry.TokensSent, entry.Completed));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = MockApi.Parse(await response.Content.ReadAsStringAsync());
        var expected = MockApi.ExpectedText(Prompt, 5);
        Assert.Equal(expected, body.GetProperty("generated_text").GetString());
        var details = body.GetProperty("details");
        Assert.Equal("eos_token", details.GetProperty("finish_reason").GetString());
        Assert.Equal(expected, string.Concat(details.GetProperty("tokens").EnumerateArray().Select(t => t.GetProperty("text").GetString())));
    }

    [Theory]
    [InlineData("/generate_stream", """{"parameters":{"max_new_tokens":5}}""", "'inputs'")]
    [InlineData("/generate", """{"inputs":"hi","parameters":{"max_new_tokens":"five"}}""", "'max_new_tokens'")]
    public async Task MalformedBody_Returns400_InTgisErrorShape(string path, string body, string messagePart)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post(path, body, sessionId: null));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = MockApi.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("validation", error.GetProperty("error_type").GetString());
        Assert.Contains(messagePart, error.GetProperty("error").GetString());
    }
}
