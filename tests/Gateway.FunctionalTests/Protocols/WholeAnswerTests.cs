using System.Text;
using Gateway.Protocols;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Protocols;

/// <summary>
/// Answers of <c>"stream": false</c>: counted as they pass, never held. Every API's whole answer from
/// the mock, through the gateway, is counted as its ledger says; one larger than any buffer the gateway
/// could keep is counted all the same.
/// </summary>
public sealed class WholeAnswerTests
{
    public static TheoryData<string, string, string> Answers => new()
    {
        { "chat_completions", "/v1/chat/completions", """{"model":"mock-1","stream":false,"max_tokens":50,"messages":[{"role":"user","content":"whole"}]}""" },
        { "completions", "/v1/completions", """{"model":"mock-1","stream":false,"max_tokens":50,"prompt":"whole"}""" },
        { "responses", "/v1/responses", """{"model":"mock-1","stream":false,"max_output_tokens":50,"input":"whole"}""" },
        { "messages", "/v1/messages", """{"model":"mock-1","stream":false,"max_tokens":50,"messages":[{"role":"user","content":"whole"}]}""" },
        { "gemini", "/v1beta/models/mock-1:generateContent", """{"contents":[{"role":"user","parts":[{"text":"whole"}]}],"generationConfig":{"maxOutputTokens":50}}""" },
        { "tgi", "/generate", """{"inputs":"whole","parameters":{"max_new_tokens":50,"details":true}}""" },
        { "llamacpp", "/completion", """{"prompt":"whole","n_predict":50,"stream":false}""" },
        { "ollama", "/api/chat", """{"model":"mock-1","stream":false,"messages":[{"role":"user","content":"whole"}],"options":{"num_predict":50}}""" },
    };

    [Theory]
    [MemberData(nameof(Answers))]
    public async Task WholeAnswer_EveryApi_TokensStreamedEqualTheLedger(string api, string path, string body)
    {
        await using var stack = await ApiStack.StartAsync("whole", ApiCase.All.First(c => c.Label == api));
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Add("X-Session-Id", "w");
        request.Headers.Add("X-Mock-Completion-Tokens", "13");
        request.Headers.Add("X-Mock-Tokens-Per-Second", "1000");

        using var response = await stack.Client.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.IsSuccessStatusCode, text);
        var entry = await stack.Stack.WaitForEntryAsync("w", e => e.EndedAt is not null);
        Assert.False(entry.Stream);
        var (ended, streamed, _) = await stack.EndedAsync("completed");
        Assert.Equal(api, ended["api"]);
        Assert.Equal(entry.TokensSent, streamed.Value);
    }

    /// <summary>12 MB of answer text, split into 64 KiB writes: the counts that follow it are found
    /// (the gateway used to keep at most 4 MiB of a whole answer, and counted nothing past that).</summary>
    [Theory]
    [InlineData("chat_completions", "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"TEXT\"},\"finish_reason\":\"stop\"}],\"model\":\"m\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4000000}}", 4000000L)]
    [InlineData("messages", "{\"id\":\"x\",\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"TEXT\"}],\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4000001}}", 4000001L)]
    [InlineData("gemini", "[{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"TEXT\"}]}}],\"usageMetadata\":{\"candidatesTokenCount\":5}},{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4000002}}]", 4000002L)]
    [InlineData("ollama", "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"TEXT\"},\"done\":true,\"prompt_eval_count\":3,\"eval_count\":4000003}", 4000003L)]
    public void WholeAnswerOver4MiB_Counted_FromItsOwnCount(string api, string template, long expected)
    {
        var text = string.Concat(Enumerable.Repeat("lorem \\\"ipsum\\\" \\u00e9 ", 12 * 1024 * 1024 / 22));
        var bytes = Encoding.UTF8.GetBytes(template.Replace("TEXT", text, StringComparison.Ordinal));
        var adapter = ApiAdapters.All.First(a => a.Label == api);
        using var counter = adapter.CreateCounter("application/json", null);

        foreach (var piece in bytes.Chunk(64 * 1024))
        {
            counter.Observe(piece);
        }

        counter.Complete();

        Assert.Equal(expected, counter.Tokens);
        Assert.Equal(3, counter.ReportedPromptTokens);
        Assert.True(counter.SawEnd);
    }
}
