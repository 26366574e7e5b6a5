using System.Text;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using MockLlm;
using Xunit.Abstractions;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// Every log line the gateway writes during a full session (completed, superseded, stopped, dropped,
/// rejected and reset streams), at the shipped levels for the framework and at Trace for the gateway
/// itself, is free of the prompt, the completion, the credential and the raw session id.
/// </summary>
public sealed class LogHygieneTests(ITestOutputHelper output)
{
    private const string RouteId = "log-hygiene";
    private const string Prompt = "zebra-prompt-7781";
    private const string Credential = "Bearer sk-live-SECRET-4242";
    private const string SessionId = "sess-visible-1";

    private static readonly string[] Secrets = [Prompt, "sk-live-SECRET-4242", "SECRET-4242", "sk-live", SessionId];

    [Fact]
    public async Task FullSession_EveryLogLine_HoldsNoPromptCompletionCredentialOrSessionId()
    {
        var capture = new LogCapture();
        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 20, TimeToFirstTokenMs = 0 });
        await using var gateway = await GatewayHost.StartAsync(mock.BaseAddress, configure: null, builder: builder =>
        {
            builder.Configuration.AddInMemoryCollection(ShippedLoggingSection());
            builder.Logging.AddProvider(capture);
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
            builder.Logging.AddFilter("Gateway", LogLevel.Trace);
        }, routeId: RouteId);
        using var client = StreamReading.NewClient(gateway.BaseAddress);
        using var ended = new MetricSignal("llm_gateway.streams.ended", RouteId, count: 5);
        var completions = new List<IReadOnlyList<string>>();

        // Completed.
        var completed = await StreamReading.SendAndReadAsync(client, Chat(maxTokens: 6, tokensPerSecond: 1000));
        completions.Add(Contents(completed));

        // Superseded by a newer request with the same session, then that one stopped explicitly.
        using var first = await StreamReading.SendAsync(client, Chat(maxTokens: 300));
        await WaitForTokensAsync(mock, index: 1);
        using var second = await StreamReading.SendAsync(client, Chat(maxTokens: 300));
        var superseded = await StreamReading.ReadToEndAsync(first);
        completions.Add(Contents(superseded));
        await WaitForTokensAsync(mock, index: 2);
        using var stop = new HttpRequestMessage(HttpMethod.Post, $"/v1/sessions/{SessionId}/cancel");
        stop.Headers.TryAddWithoutValidation("Authorization", Credential);
        using var stopped = await client.SendAsync(stop);
        var stoppedTranscript = await StreamReading.ReadToEndAsync(second);
        completions.Add(Contents(stoppedTranscript));

        // Dropped: the client's connection goes away mid-stream.
        var dropClient = StreamReading.NewClient(gateway.BaseAddress);
        var dropped = await StreamReading.SendAsync(dropClient, Chat(maxTokens: 300));
        await WaitForTokensAsync(mock, index: 3);
        dropped.Dispose();
        dropClient.Dispose();

        // Rejected: a session id that is too long, with the credential and the prompt alongside.
        var (invalidStatus, _, _) = await RawHttp.SendAsync(gateway.BaseAddress, RawHttp.ChatPost(
            Encoding.ASCII.GetBytes($"Authorization: {Credential}\r\nX-Session-Id: {SessionId}{new string('x', 300)}\r\n")));

        // Reset by the upstream after two tokens (at a pace that lets the first reach the gateway
        // before the mock aborts the connection).
        var reset = await StreamReading.SendAndReadAsync(client, Chat(maxTokens: 50, failAfter: 2));
        completions.Add(Contents(reset));

        await ended.WaitAsync(); // every stream's end has been logged and accounted
        await gateway.Registry.WhenEmptyAsync(CancellationToken.None).WaitAsync(Wait.Timeout);
        var entries = capture.Entries;
        Report(entries);

        // The session happened as described, so the capture saw what it had to see.
        Assert.Equal("[DONE]", completed.DataEvents[^1]);
        Assert.Contains("request_superseded", superseded.DataEvents[^1], StringComparison.Ordinal);
        Assert.Equal(200, (int)stopped.StatusCode);
        Assert.Contains("request_stopped", stoppedTranscript.DataEvents[^1], StringComparison.Ordinal);
        Assert.Equal(400, invalidStatus);
        Assert.Contains("upstream_reset", reset.DataEvents[^1], StringComparison.Ordinal);
        Assert.True(completions.All(c => c.Count >= 1), "every stream carried some completion text");
        Assert.True(entries.Count(e => e.Category.StartsWith("Gateway.", StringComparison.Ordinal)) >= 5,
            "the gateway's own lines were captured:\n" + string.Join("\n", entries));

        var leaks = new List<string>();
        foreach (var entry in entries)
        {
            var text = entry.Text;
            leaks.AddRange(Secrets.Where(s => text.Contains(s, StringComparison.OrdinalIgnoreCase)).Select(s => $"'{s}' in {entry}"));
            foreach (var tokens in completions)
            {
                // A completion of one or two common words ("ex ") would match ordinary text ("exception"):
                // only runs of three tokens or more say anything.
                var whole = string.Concat(tokens).Trim();
                if (tokens.Count >= 3 && text.Contains(whole, StringComparison.Ordinal))
                {
                    leaks.Add($"completion '{whole}' in {entry}");
                }

                for (var i = 0; i + 2 < tokens.Count; i++)
                {
                    var run = (tokens[i] + tokens[i + 1] + tokens[i + 2]).Trim();
                    if (text.Contains(run, StringComparison.Ordinal))
                    {
                        leaks.Add($"completion tokens '{run}' in {entry}");
                    }
                }
            }
        }

        Assert.True(leaks.Count == 0, string.Join("\n", leaks));
    }

    /// <summary>The Logging section of gateway/appsettings.json, flattened to configuration keys.</summary>
    private static Dictionary<string, string?> ShippedLoggingSection()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Gateway.sln")))
        {
            dir = dir.Parent;
        }

        Assert.NotNull(dir);
        var shipped = new ConfigurationBuilder().AddJsonFile(Path.Combine(dir.FullName, "gateway", "appsettings.json"), optional: false).Build();
        var logging = shipped.GetSection("Logging").AsEnumerable().Where(p => p.Value is not null).ToDictionary(p => p.Key, p => p.Value);
        Assert.Contains("Logging:LogLevel:Yarp", logging.Keys);
        return logging;
    }

    private HttpRequestMessage Chat(int maxTokens, int tokensPerSecond = 20, int? failAfter = null)
    {
        var headers = new Dictionary<string, string> { ["X-Mock-Tokens-Per-Second"] = tokensPerSecond.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (failAfter is { } n)
        {
            headers["X-Mock-Fail-After"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return StreamReading.ChatRequest("/v1/chat/completions", Prompt, SessionId, maxTokens: maxTokens, authorization: Credential, headers: headers);
    }

    private static Task WaitForTokensAsync(MockLlmServer mock, int index) =>
        mock.Ledger.WaitForAsync(l => l.Count > index && l[index].TokensSent >= 3, Wait.Timeout);

    /// <summary>The completion text of each SSE chunk, in order.</summary>
    private static List<string> Contents(StreamTranscript transcript)
    {
        var contents = new List<string>();
        foreach (var data in transcript.DataEvents.Where(d => d != "[DONE]"))
        {
            using var json = JsonDocument.Parse(data);
            if (json.RootElement.TryGetProperty("choices", out var choices) && choices.GetArrayLength() > 0
                && choices[0].TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var content)
                && content.GetString() is { Length: > 0 } text)
            {
                contents.Add(text);
            }
        }

        return contents;
    }

    private void Report(IReadOnlyList<CapturedLog> entries)
    {
        foreach (var group in entries.GroupBy(e => (e.Category, e.EventId.Id, e.EventId.Name, e.Level)).OrderBy(g => g.Key.Category, StringComparer.Ordinal))
        {
            output.WriteLine($"{group.Count(),4} x {group.Key.Level} {group.Key.Category}[{group.Key.Id}{(group.Key.Name is null ? "" : ":" + group.Key.Name)}]: " +
                string.Join(" || ", group.Select(e => e.Message).Distinct(StringComparer.Ordinal)));
        }

        foreach (var entry in entries.Where(e => e.Scopes.Any(s => Secrets.Any(secret => s.Contains(secret, StringComparison.OrdinalIgnoreCase)))))
        {
            output.WriteLine($"scope only (not written by the shipped console sink, which has IncludeScopes off): {entry.Category}[{entry.EventId.Id}] scopes: {string.Join(" / ", entry.Scopes)}");
        }
    }
}
