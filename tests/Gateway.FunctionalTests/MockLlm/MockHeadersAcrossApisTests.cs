using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.MockLlm;

/// <summary>The <c>X-Mock-*</c> headers act the same on every streaming API the mock speaks: the generation
/// loop is shared, only the bytes differ.</summary>
public sealed class MockHeadersAcrossApisTests(MockLlmFixture fixture) : IClassFixture<MockLlmFixture>
{
    /// <param name="EndMarker">Text that only the API's clean end contains.</param>
    /// <param name="ErrorMessage">Reads the message out of the API's error shape, asserting the shape.</param>
    private sealed record Api(string Path, string Body, string EndMarker, Func<JsonElement, string?> ErrorMessage);

    private static readonly Dictionary<string, Api> s_apis = new()
    {
        ["responses"] = new(
            "/v1/responses",
            """{"model":"gpt-mock","input":"hi","stream":true}""",
            "response.completed",
            root => root.GetProperty("error").GetProperty("message").GetString()),
        ["anthropic"] = new(
            "/v1/messages",
            """{"model":"claude-mock","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}""",
            "message_stop",
            root =>
            {
                Assert.Equal("error", root.GetProperty("type").GetString());
                return root.GetProperty("error").GetProperty("message").GetString();
            }),
        ["gemini"] = new(
            "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse",
            """{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}""",
            "finishReason",
            root =>
            {
                Assert.Equal("INVALID_ARGUMENT", root.GetProperty("error").GetProperty("status").GetString());
                return root.GetProperty("error").GetProperty("message").GetString();
            }),
        ["tgi"] = new(
            "/generate_stream",
            """{"inputs":"hi","parameters":{"details":true}}""",
            "\"generated_text\":\"",
            root =>
            {
                Assert.Equal("validation", root.GetProperty("error_type").GetString());
                return root.GetProperty("error").GetString();
            }),
        ["llamacpp"] = new(
            "/completion",
            """{"prompt":"hi","stream":true}""",
            "\"stop\":true",
            root =>
            {
                Assert.Equal("invalid_request_error", root.GetProperty("error").GetProperty("type").GetString());
                return root.GetProperty("error").GetProperty("message").GetString();
            }),
    };

    public static TheoryData<string> Apis => [.. s_apis.Keys];

    public static TheoryData<string, int> ApisAndFailPoints()
    {
        var data = new TheoryData<string, int>();
        foreach (var api in s_apis.Keys)
        {
            data.Add(api, 2);

            // After the last token: APIs whose last token event is also their end must send it as an ordinary one.
            data.Add(api, 5);
        }

        return data;
    }

    private async Task<StreamTranscript> SendAsync(string api, string? session, params (string Name, string Value)[] headers)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);
        return await StreamReading.SendAndReadAsync(client, MockApi.Post(s_apis[api].Path, s_apis[api].Body, session, headers));
    }

    [Theory]
    [MemberData(nameof(ApisAndFailPoints))]
    public async Task FailAfter_ResetsTheConnectionWithoutTheApisEnd_AndTheLedgerSaysFailed(string api, int failAfter)
    {
        var session = MockApi.NewSessionId();
        StreamTranscript transcript;
        try
        {
            // Early headers, so the client normally reads the tokens before the reset.
            transcript = await SendAsync(
                api, session, (MockApi.CompletionTokens, "5"), ("X-Mock-Fail-After", $"{failAfter}"), ("X-Mock-Early-Headers", "true"));
        }
        catch (HttpRequestException ex)
        {
            // The reset overtook the client before it had read the headers: no end seen either.
            transcript = new StreamTranscript(0, null, [], ex);
        }

        Assert.False(transcript.EndedCleanly);
        Assert.DoesNotContain(transcript.Lines, line => line.Contains(s_apis[api].EndMarker, StringComparison.Ordinal));
        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((true, false, failAfter), (entry.Failed, entry.Completed, entry.TokensSent));
    }

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task WithoutFaults_TheSameRequestEndsCleanlyWithTheApisEnd(string api)
    {
        var session = MockApi.NewSessionId();

        var transcript = await SendAsync(api, session, (MockApi.CompletionTokens, "5"));

        Assert.True(transcript.EndedCleanly);
        Assert.Contains(transcript.Lines, line => line.Contains(s_apis[api].EndMarker, StringComparison.Ordinal));
        Assert.True((await MockApi.EndedEntryAsync(fixture.Server, session)).Completed);
    }

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task PinnedClock_TwoAnswersToTheSameRequest_AreByteForByteEqual(string api)
    {
        (string, string)[] headers = [(MockApi.CompletionTokens, "4"), ("X-Mock-Clock", "1700000000")];

        var first = await SendAsync(api, session: null, headers);
        var second = await SendAsync(api, session: null, headers);

        Assert.True(first.EndedCleanly);
        Assert.Contains(first.Lines, line => line.Contains(s_apis[api].EndMarker, StringComparison.Ordinal));
        Assert.Equal(first.Lines, second.Lines);
    }

    [Theory]
    [InlineData("3")]
    [InlineData("3:")]
    [InlineData("-1:100")]
    [InlineData("3:100:5")]
    [InlineData("3:99999999999")]
    public async Task MalformedPause_Returns400NamingTheHeader(string value)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post(s_apis["anthropic"].Path, s_apis["anthropic"].Body, sessionId: null, ("X-Mock-Pause", value)));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("X-Mock-Pause", s_apis["anthropic"].ErrorMessage(MockApi.Parse(await response.Content.ReadAsStringAsync())));
    }

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task MalformedMockHeader_Returns400_InTheApisOwnErrorShape(string api)
    {
        using var client = StreamReading.NewClient(fixture.Server.BaseAddress);

        using var response = await client.SendAsync(MockApi.Post(s_apis[api].Path, s_apis[api].Body, sessionId: null, ("X-Mock-Tokens-Per-Second", "fast")));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("X-Mock-Tokens-Per-Second", s_apis[api].ErrorMessage(MockApi.Parse(await response.Content.ReadAsStringAsync())));
    }

    [Theory]
    [MemberData(nameof(Apis))]
    public async Task EarlyHeaders_ArriveBeforeTheFirstToken_AndAClientThatLeavesCancelsTheGeneration(string api)
    {
        var session = MockApi.NewSessionId();
        using (var client = StreamReading.NewClient(fixture.Server.BaseAddress))
        {
            // The first token is ten minutes away: only early headers can answer this send.
            using var response = await StreamReading.SendAsync(client, MockApi.Post(
                s_apis[api].Path, s_apis[api].Body, session, ("X-Mock-Early-Headers", "true"), ("X-Mock-Ttft-Ms", "600000")))
                .WaitAsync(Wait.Timeout);

            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        }

        var entry = await MockApi.EndedEntryAsync(fixture.Server, session);
        Assert.Equal((true, 0), (entry.Cancelled, entry.TokensSent));
    }
}
