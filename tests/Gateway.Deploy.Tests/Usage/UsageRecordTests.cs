using System.Globalization;
using System.Text.Json;
using Gateway.Deploy.Tests.Infrastructure;
using MockLlm;

namespace Gateway.Deploy.Tests.Usage;

/// <summary>
/// The usage record on the real gateway process, written by its JSON console formatter as an operator's log
/// pipeline reads it: one <c>Gateway.Usage</c> line per request of a mixed run (completed, superseded, dropped,
/// stopped, refused by a limit and as malformed), whose <c>completionTokens</c> add up to the metrics' total
/// and to the mock's ledger; no prompt, completion, credential or session id in any of them; a hostile model
/// name bounded and escaped.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class UsageRecordTests
{
    private const string Prompt = "prompt-text-that-must-never-be-logged";
    private static readonly TimeSpan Timeout = Streaming.Timeout;

    [Fact]
    public async Task MixedRun_OneRecordPerRequest_TokensAddUpToMetricsAndLedger_NothingSecret()
    {
        // 10 tokens a second: a cut stream's last token, flushed by the mock as the gateway closed the upstream, is
        // seldom still in flight; the bound below allows two.
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 10, TimeToFirstTokenMs = 10 });
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString(),
            ["Logging__Console__FormatterName"] = "json",
            ["Gateway__RateLimits__MaxConcurrentStreams"] = "1",
            ["Gateway__Pricing__Models__mock-1__InputPerMillion"] = "1",
            ["Gateway__Pricing__Models__mock-1__OutputPerMillion"] = "2",
            ["Gateway__Telemetry__Models__0"] = "mock-1",
        });
        using var http = Streaming.Client(gateway.BaseAddress);
        string[] credentials = ["Bearer sk-alpha-0001", "Bearer sk-bravo-0002", "Bearer sk-charlie-0003", "Bearer sk-delta-0004", "Bearer sk-echo-0005"];
        string[] sessions = ["sess-complete-7f3a", "sess-super-7f3a", "sess-drop-7f3a", "sess-stop-7f3a", "sess-busy-7f3a"];

        // Completed, its whole answer read.
        string answer;
        using (var completed = await Streaming.SendAsync(http, "/v1/chat/completions", sessions[0], 12, null, credentials[0], prompt: Prompt))
        {
            var transcript = await Streaming.ReadToEndAsync(completed);
            Assert.Equal("[DONE]", transcript.Data[^1]);
            answer = string.Concat(transcript.Data.SkipLast(1).Select(ContentOf));
            Assert.True(answer.Length >= 12, answer);
        }

        // Superseded by a newer request with the same key, which completes.
        var older = await Streaming.SendAsync(http, "/v1/chat/completions", sessions[1], 400, null, credentials[1], prompt: Prompt);
        await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == sessions[1] && e.TokensSent >= 3), Timeout);
        using (var newer = await Streaming.SendAsync(http, "/v1/chat/completions", sessions[1], 5, null, credentials[1], prompt: Prompt))
        {
            Assert.Equal("[DONE]", (await Streaming.ReadToEndAsync(newer)).Data[^1]);
        }

        Assert.Contains("superseded", (await Streaming.ReadToEndAsync(older)).Data[^1]);
        older.Dispose();

        // Dropped by its client.
        using (var dropping = Streaming.Client(gateway.BaseAddress))
        {
            var dropped = await Streaming.SendAsync(dropping, "/v1/chat/completions", sessions[2], 400, null, credentials[2], prompt: Prompt);
            await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == sessions[2] && e.TokensSent >= 3), Timeout);
            dropped.Dispose();
        }

        // Stopped by its own tenant.
        var stopping = await Streaming.SendAsync(http, "/v1/chat/completions", sessions[3], 400, null, credentials[3], prompt: Prompt);
        await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == sessions[3] && e.TokensSent >= 3), Timeout);
        using (var stop = new HttpRequestMessage(HttpMethod.Post, $"v1/sessions/{sessions[3]}/cancel"))
        {
            stop.Headers.TryAddWithoutValidation("Authorization", credentials[3]);
            using var stopped = await http.SendAsync(stop);
            Assert.Equal(200, (int)stopped.StatusCode);
        }

        Assert.Contains("request_stopped", (await Streaming.ReadToEndAsync(stopping)).Data[^1]);
        stopping.Dispose();

        // Refused by the concurrency limit (one stream per tenant here) while the tenant's first one runs; then that one is dropped.
        using (var busy = Streaming.Client(gateway.BaseAddress))
        {
            var running = await Streaming.SendAsync(busy, "/v1/chat/completions", sessions[4], 400, null, credentials[4], prompt: Prompt);
            await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == sessions[4] && e.TokensSent >= 1), Timeout);
            using (var refused = await Streaming.SendAsync(http, "/v1/chat/completions", sessions[4] + "-2", 5, null, credentials[4], prompt: Prompt, expectOk: false))
            {
                Assert.Equal(429, (int)refused.StatusCode);
            }

            running.Dispose();
        }

        // Refused as malformed: a session key over the limit, never sent upstream.
        using (var rejected = await Streaming.SendAsync(http, "/v1/chat/completions", new string('k', 300), 5, null, credentials[0], prompt: Prompt, expectOk: false))
        {
            Assert.Equal(400, (int)rejected.StatusCode);
        }

        // Model names with a newline and an escape character, one long (bounded and escaped in its record), one
        // huge (past what the gateway reads of a model name: none in its record); both answered.
        var hostileModel = "evil\nUsage route=forged\u001b[31m" + new string('m', 200);
        foreach (var name in new[] { hostileModel, hostileModel + new string('m', 10_000) })
        {
            using var hostile = await Streaming.SendAsync(http, "/v1/chat/completions", null, 4, null, credentials[0], model: name, prompt: Prompt);
            Assert.Equal("[DONE]", (await Streaming.ReadToEndAsync(hostile)).Data[^1]);
        }

        const int Requests = 10;
        await gateway.WaitForOutputAsync("\"Category\":\"Gateway.Usage\"", Timeout, Requests);
        var ledger = await mock.Ledger.WaitForAsync(l => l.Count == 8 && l.All(e => e.EndedAt is not null), Timeout);
        var records = UsageLines(gateway.Output);

        Assert.Equal(Requests, records.Count);
        var outcomes = records.Select(r => r.GetProperty("outcome").GetString()).Order().ToArray();
        Assert.Equal(
            new[] { "client_disconnected", "client_disconnected", "completed", "completed", "completed", "completed", "rate_limited", "rejected", "stopped", "superseded" },
            outcomes);

        // Tokens: what the records say is what the metrics say, and what the model server generated.
        var recorded = records.Sum(r => r.GetProperty("completionTokens").GetInt64());
        Assert.Equal(await TokensStreamedAsync(gateway), recorded);
        var completedRecords = records.Where(r => r.GetProperty("outcome").GetString() == "completed").Sum(r => r.GetProperty("completionTokens").GetInt64());
        Assert.Equal(ledger.Where(e => e.Completed).Sum(e => (long)e.TokensSent), completedRecords);
        Assert.Equal(12 + 5 + 4 + 4, completedRecords);
        var cut = records.Where(r => r.GetProperty("outcome").GetString() is "superseded" or "client_disconnected" or "stopped").ToArray();
        var cutRecorded = cut.Sum(r => r.GetProperty("completionTokens").GetInt64());
        var cutGenerated = ledger.Where(e => e.Cancelled).Sum(e => (long)e.TokensSent);
        // A token the mock flushed as the upstream was closed may never have reached the gateway.
        Assert.True(cutGenerated - cutRecorded is >= 0 && cutGenerated - cutRecorded <= 2 * cut.Length,
            $"cut streams: the ledger says {cutGenerated} tokens were sent ("
            + string.Join(", ", ledger.Where(e => e.Cancelled).Select(e => $"{e.SessionId}: {e.TokensSent}"))
            + $"), the records {cutRecorded} ("
            + string.Join(", ", cut.Select(r => $"{r.GetProperty("outcome").GetString()}: {r.GetProperty("completionTokens").GetInt64()}")) + ")");
        Assert.All(cut, r => Assert.True(r.GetProperty("completionTokens").GetInt64() >= 1, r.ToString()));
        Assert.All(cut, r => Assert.True(r.GetProperty("savedTokens").GetInt64() > 0, r.ToString()));

        // Fields, and what they must never hold.
        var tenants = records.Select(r => r.GetProperty("tenant").GetString()!).ToHashSet();
        Assert.Equal(credentials.Length, tenants.Count);
        Assert.All(tenants, t => Assert.Matches("^[0-9a-f]{12}$", t));
        foreach (var record in records)
        {
            var outcome = record.GetProperty("outcome").GetString();
            Assert.Equal("llm", record.GetProperty("route").GetString());
            Assert.Equal("chat_completions", record.GetProperty("api").GetString());
            Assert.True(record.GetProperty("durationMs").GetDouble() >= 0);
            var priced = record.GetProperty("model").GetString() == "mock-1";
            if (outcome is "rate_limited" or "rejected")
            {
                Assert.Equal(0, record.GetProperty("completionTokens").GetInt64());
                Assert.Equal(JsonValueKind.Null, record.GetProperty("firstByteMs").ValueKind);
            }
            else
            {
                Assert.True(record.GetProperty("firstByteMs").GetDouble() > 0, record.ToString());
                Assert.True(record.GetProperty("durationMs").GetDouble() >= record.GetProperty("firstByteMs").GetDouble(), record.ToString());
                Assert.Equal(priced ? "USD" : null, record.GetProperty("currency").GetString());
                Assert.Equal(priced, record.GetProperty("costSpent").ValueKind == JsonValueKind.Number && record.GetProperty("costSpent").GetDouble() > 0);
            }

            // Keyed requests carry the key's fingerprint; the keyless one (the hostile model) and the malformed key none.
            var keyed = outcome != "rejected" && !(outcome == "completed" && record.GetProperty("model").GetString() != "mock-1");
            Assert.True(keyed == (record.GetProperty("sessionKeyHash").ValueKind == JsonValueKind.String), record.ToString());
            if (keyed)
            {
                Assert.Matches("^[0-9a-f]{12}$", record.GetProperty("sessionKeyHash").GetString()!);
            }
        }

        var lines = UsageLineTexts(gateway.Output);
        foreach (var secret in credentials.Select(c => c["Bearer ".Length..]).Concat(sessions).Append(Prompt).Append(new string('k', 300)))
        {
            Assert.DoesNotContain(lines, line => line.Contains(secret, StringComparison.Ordinal));
        }

        Assert.DoesNotContain(lines, line => line.Contains(answer, StringComparison.Ordinal));

        var model = records.Single(r => r.GetProperty("model").GetString()?.StartsWith("evil", StringComparison.Ordinal) == true).GetProperty("model").GetString()!;
        Assert.True(model.Length <= 131, $"{model.Length} characters");
        Assert.EndsWith("...", model);
        Assert.StartsWith("evil\\u000aUsage route=forged\\u001b[31m", model);
        Assert.DoesNotContain(model, c => c < ' ' || c > '~');
        Assert.Single(records, r => r.GetProperty("outcome").GetString() == "completed" && r.GetProperty("model").ValueKind == JsonValueKind.Null);
        Assert.DoesNotContain(gateway.Output.Split('\n'), line => line.StartsWith("Usage route=forged", StringComparison.Ordinal));
    }

    /// <summary>The text a Chat Completions chunk adds to the answer.</summary>
    private static string ContentOf(string chunk)
    {
        using var json = JsonDocument.Parse(chunk);
        return json.RootElement.GetProperty("choices") is { ValueKind: JsonValueKind.Array } choices && choices.GetArrayLength() > 0
            && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
            ? content.GetString() ?? ""
            : "";
    }

    private static List<string> UsageLineTexts(string output) =>
        [.. output.Split('\n').Where(l => l.Contains("\"Category\":\"Gateway.Usage\"", StringComparison.Ordinal))];

    /// <summary>Each usage line's structured state, as a log pipeline reads the JSON formatter's output.</summary>
    private static List<JsonElement> UsageLines(string output) =>
        [.. UsageLineTexts(output).Select(l =>
        {
            using var line = JsonDocument.Parse(l);
            Assert.Equal(800, line.RootElement.GetProperty("EventId").GetInt32());
            return line.RootElement.GetProperty("State").Clone();
        })];

    /// <summary>The sum of <c>llm_gateway_tokens_streamed_total</c> over its series, from the process's own /metrics.</summary>
    private static async Task<long> TokensStreamedAsync(GatewayProcess gateway)
    {
        using var http = Streaming.Client(gateway.BaseAddress);
        var text = await http.GetStringAsync(new Uri("metrics", UriKind.Relative));
        return (long)text.Split('\n')
            .Where(l => l.StartsWith("llm_gateway_tokens_streamed_total{", StringComparison.Ordinal))
            .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));
    }
}
