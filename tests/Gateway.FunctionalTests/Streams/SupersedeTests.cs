using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Streams;

public sealed class SupersedeTests
{
    private static readonly Dictionary<string, string> Slow = new() { ["X-Mock-Tokens-Per-Second"] = "20" };

    [Theory]
    [InlineData("/v1/chat/completions")]
    [InlineData("/v1/completions")]
    public async Task NewerRequestSameKey_Sse_OldClientGetsSupersededEventThenCleanEnd(string path)
    {
        await using var stack = await Stack.StartAsync();
        using var oldResponse = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest(path, "tell me a long story", "s1", maxTokens: 400, headers: Slow));
        Assert.Equal(200, (int)oldResponse.StatusCode);
        await stack.WaitForEntryAsync("s1", e => e.TokensSent >= 3);

        var newer = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest(path, "short one", "s1", maxTokens: 5));
        var old = await StreamReading.ReadToEndAsync(oldResponse);

        Assert.True(old.EndedCleanly, $"old stream ended with {old.ReadError}");
        var last = JsonDocument.Parse(old.DataEvents[^1]).RootElement.GetProperty("error");
        Assert.Equal("request_superseded", last.GetProperty("type").GetString());
        Assert.Equal("superseded", last.GetProperty("code").GetString());
        Assert.DoesNotContain("[DONE]", old.DataEvents);

        Assert.True(newer.EndedCleanly);
        Assert.Equal("[DONE]", newer.DataEvents[^1]);

        var oldEntry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null, index: 0);
        Assert.True(oldEntry.Cancelled);
        Assert.True(oldEntry.TokensSent < oldEntry.TokensPlanned, $"{oldEntry.TokensSent} of {oldEntry.TokensPlanned}");
        var newEntry = await stack.WaitForEntryAsync("s1", e => e.EndedAt is not null, index: 1);
        Assert.True(newEntry.Completed);
        Assert.Equal(5, newEntry.TokensSent);
    }

    [Theory]
    [InlineData("/api/chat")]
    [InlineData("/api/generate")]
    public async Task NewerRequestSameKey_Ndjson_OldClientGetsErrorLineThenCleanEnd(string path)
    {
        await using var stack = await Stack.StartAsync();
        using var oldResponse = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest(path, "tell me a long story", "n1", maxTokens: 400, headers: Slow));
        await stack.WaitForEntryAsync("n1", e => e.TokensSent >= 3);

        var newer = await StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest(path, "short", "n1", maxTokens: 5));
        var old = await StreamReading.ReadToEndAsync(oldResponse);

        Assert.True(old.EndedCleanly, $"old stream ended with {old.ReadError}");
        var lastLine = JsonDocument.Parse(old.Lines[^1]).RootElement;
        Assert.Contains("superseded", lastLine.GetProperty("error").GetString());
        foreach (var line in old.Lines)
        {
            JsonDocument.Parse(line); // every line stays valid NDJSON
        }

        Assert.True(JsonDocument.Parse(newer.Lines[^1]).RootElement.GetProperty("done").GetBoolean());
        var oldEntry = await stack.WaitForEntryAsync("n1", e => e.EndedAt is not null, index: 0);
        Assert.True(oldEntry.Cancelled);
        Assert.True(oldEntry.TokensSent < oldEntry.TokensPlanned);
    }

    [Fact]
    public async Task NewerRequestBeforeFirstByte_OldClientGets409Json()
    {
        await using var stack = await Stack.StartAsync();
        // A long time to first token: the mock sends nothing, not even headers, before it.
        var slowStart = new Dictionary<string, string> { ["X-Mock-Ttft-Ms"] = "60000" };
        var oldTask = StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "hello", "b1", maxTokens: 50, headers: slowStart));
        await stack.WaitForEntryAsync("b1", _ => true);

        var newer = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "hello again", "b1", maxTokens: 3));
        var old = await oldTask;

        Assert.Equal(409, old.StatusCode);
        Assert.Equal("application/json", old.ContentType);
        var error = JsonDocument.Parse(string.Join('\n', old.Lines)).RootElement.GetProperty("error");
        Assert.Equal("request_superseded", error.GetProperty("type").GetString());
        Assert.Equal(200, newer.StatusCode);
        var oldEntry = await stack.WaitForEntryAsync("b1", e => e.EndedAt is not null, index: 0);
        Assert.True(oldEntry.Cancelled);
        Assert.Equal(0, oldEntry.TokensSent);
    }

    [Fact]
    public async Task NewerRequestSameKey_NonStreaming_OldRequestGets409AndUpstreamStops()
    {
        await using var stack = await Stack.StartAsync();
        var oldTask = StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "hello", "ns1", stream: false, maxTokens: 400, headers: Slow));
        await stack.WaitForEntryAsync("ns1", e => e.TokensSent >= 2);

        var newer = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "hi", "ns1", stream: false, maxTokens: 3));
        var old = await oldTask;

        Assert.Equal(409, old.StatusCode);
        Assert.Equal(200, newer.StatusCode);
        var oldEntry = await stack.WaitForEntryAsync("ns1", e => e.EndedAt is not null, index: 0);
        Assert.True(oldEntry.Cancelled);
    }

    [Fact]
    public async Task FiftyConcurrentClaimsOnOneKey_ExactlyOneCompletes_RegistryEmpties()
    {
        await using var stack = await Stack.StartAsync();
        using var start = new ManualResetEventSlim();
        var requests = Enumerable.Range(0, 50).Select(i => Task.Run(async () =>
        {
            start.Wait();
            return await StreamReading.SendAndReadAsync(stack.Client,
                StreamReading.ChatRequest("/v1/chat/completions", $"prompt {i}", "race", maxTokens: 120));
        })).ToArray();
        start.Set();
        var transcripts = await Task.WhenAll(requests);

        Assert.All(transcripts, t => Assert.True(t.EndedCleanly));
        var completed = transcripts.Count(t => t.StatusCode == 200 && t.DataEvents.Count > 0 && t.DataEvents[^1] == "[DONE]");
        Assert.Equal(1, completed);
        Assert.Equal(49, transcripts.Count(t => t.StatusCode == 409 || (t.DataEvents.Count > 0 && t.DataEvents[^1].Contains("request_superseded"))));

        var ledger = await stack.Ledger.WaitForAsync(all => all.All(e => e.EndedAt is not null), Wait.Timeout);
        Assert.Equal(1, ledger.Count(e => e.Completed));
        using var drained = new CancellationTokenSource(Wait.Timeout);
        await stack.Gateway.Registry.WhenEmptyAsync(drained.Token);
        Assert.Equal(0, stack.Gateway.Registry.Count);
    }

    [Fact]
    public async Task DifferentKeys_BothComplete()
    {
        await using var stack = await Stack.StartAsync();
        var a = StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "a", "k-a", maxTokens: 20));
        var b = StreamReading.SendAndReadAsync(stack.Client, StreamReading.ChatRequest("/v1/chat/completions", "b", "k-b", maxTokens: 20));
        var results = await Task.WhenAll(a, b);

        Assert.All(results, r => Assert.Equal("[DONE]", r.DataEvents[^1]));
        var ledger = stack.Ledger.Snapshot();
        Assert.Equal(2, ledger.Count(e => e.Completed && e.TokensSent == 20));
    }

    [Fact]
    public async Task SameKeyDifferentCredentials_NeitherSupersedesTheOther()
    {
        await using var stack = await Stack.StartAsync();
        using var tenantA = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "a", "shared", maxTokens: 30, authorization: "Bearer tenant-a", headers: Slow));
        await stack.WaitForEntryAsync("shared", e => e.TokensSent >= 2);

        var tenantB = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "b", "shared", maxTokens: 5, authorization: "Bearer tenant-b"));
        var a = await StreamReading.ReadToEndAsync(tenantA);

        Assert.Equal("[DONE]", tenantB.DataEvents[^1]);
        Assert.Equal("[DONE]", a.DataEvents[^1]);
        Assert.DoesNotContain(stack.Ledger.Snapshot(), e => e.Cancelled);
    }

    [Fact]
    public async Task NoKey_ProxiedUntracked_ConcurrentRequestsBothComplete()
    {
        await using var stack = await Stack.StartAsync();
        using var first = await StreamReading.SendAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "a", sessionId: null, maxTokens: 20, headers: Slow));
        await stack.WaitForEntryAsync(null, e => e.TokensSent >= 1);
        Assert.Equal(0, stack.Gateway.Registry.Count);

        var second = await StreamReading.SendAndReadAsync(stack.Client,
            StreamReading.ChatRequest("/v1/chat/completions", "b", sessionId: null, maxTokens: 5));
        var firstTranscript = await StreamReading.ReadToEndAsync(first);

        Assert.Equal("[DONE]", firstTranscript.DataEvents[^1]);
        Assert.Equal("[DONE]", second.DataEvents[^1]);
        Assert.All(stack.Ledger.Snapshot(), e => Assert.True(e.Completed));
    }
}
