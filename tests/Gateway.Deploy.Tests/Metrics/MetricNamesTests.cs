using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Deploy.Tests.Infrastructure;
using Gateway.Deploy.Tests.Prometheus;
using MockLlm;

namespace Gateway.Deploy.Tests.Metrics;

/// <summary>Every metric the alert rules and the dashboard use is one the gateway really exports.</summary>
public sealed class MetricNamesTests
{
    /// <summary>Series Prometheus makes itself for each target, not the gateway.</summary>
    private static readonly HashSet<string> Synthetic = ["up", "scrape_duration_seconds", "scrape_samples_scraped"];

    private static readonly string[] HistogramSuffixes = ["_bucket", "_sum", "_count"];

    [Theory]
    [InlineData("""sum by (route) (rate(llm_gateway_streams_ended_total{outcome="upstream_error"}[5m])) > 0.05""", "llm_gateway_streams_ended_total")]
    [InlineData("""histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{route=~"$route"}[$__rate_interval])))""", "a_seconds_bucket")]
    [InlineData("""label_values(llm_gateway_streams_ended_total{route=~"$route"}, model)""", "llm_gateway_streams_ended_total")]
    [InlineData("""x > 5 * sum by (route, limit) (rate(y[1h] offset 1d)) and on (route) z""", "x y z")]
    public void PromQl_Expression_YieldsItsMetricNames(string expr, string expected)
    {
        Assert.Equal(expected.Split(' '), PromQl.MetricNames(expr).Distinct());
    }

    [Fact]
    public void RulesAndDashboard_UseMetrics_OnlyFromTheGatewayOrPrometheus()
    {
        var used = UsedNames();
        Assert.Contains("llm_gateway_streams_active", used.Keys);
        Assert.Contains("gen_ai_client_operation_time_to_first_chunk_seconds_bucket", used.Keys);
        var foreign = used.Keys.Where(n => !Synthetic.Contains(n) && !n.StartsWith("llm_gateway_", StringComparison.Ordinal) && !n.StartsWith("gen_ai_", StringComparison.Ordinal));
        Assert.Empty(foreign);
    }

    [Fact]
    public void Dashboard_Variables_AreRouteModelAndApi()
    {
        var dashboard = Dashboard();
        var variables = dashboard["templating"]!["list"]!.AsArray().Select(v => (string?)v!["name"]).ToList();
        Assert.Contains("route", variables);
        Assert.Contains("model", variables);
        Assert.Contains("api", variables);

        // Every query of a series that carries the api label filters by it, and streamed and saved tokens split by it.
        var exprs = dashboard["panels"]!.AsArray().SelectMany(p => p!["targets"]?.AsArray() ?? []).Select(t => (string)t!["expr"]!).ToList();
        foreach (var expr in exprs.Where(e => e.Contains("llm_gateway_tokens_streamed_total", StringComparison.Ordinal)
            || e.Contains("llm_gateway_cancellation_tokens_saved", StringComparison.Ordinal)
            || e.Contains("llm_gateway_streams_", StringComparison.Ordinal)))
        {
            Assert.Contains("api=~\"$api\"", expr, StringComparison.Ordinal);
        }

        Assert.Contains(exprs, e => e.StartsWith("sum by (api, model) (rate(llm_gateway_tokens_streamed_total", StringComparison.Ordinal));
        Assert.Contains(exprs, e => e.StartsWith("sum by (api, reason) (rate(llm_gateway_cancellation_tokens_saved_sum", StringComparison.Ordinal));

        // Money saved beside tokens saved, split the same way, with the currency kept for the legend.
        foreach (var expr in exprs.Where(e => e.Contains("llm_gateway_cancellation_cost_", StringComparison.Ordinal)))
        {
            Assert.Contains("api=~\"$api\"", expr, StringComparison.Ordinal);
            Assert.Contains("currency", expr, StringComparison.Ordinal);
        }

        Assert.Contains(exprs, e => e.StartsWith("sum by (api, model, currency) (rate(llm_gateway_cancellation_cost_saved_total", StringComparison.Ordinal));
    }

    [Fact]
    public async Task LiveScrape_AfterSupersedeCompletionAndRefusal_ExportsEveryNameTheRulesAndDashboardUse()
    {
        await using var mock = await MockLlmServer.StartAsync();
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString(),
            // llm_gateway_redis_available exists only with the Redis registry configured; a Redis that is
            // not there also shows that streams and supersede go on without it (the gauge reads 0).
            ["Gateway__Sessions__Redis"] = $"127.0.0.1:{ClosedPort()}",
            // llm_gateway_rate_limit_rejections_total exists once a request was refused: this caller (one
            // address) may make two requests, so a third is refused.
            ["Gateway__RateLimits__Anonymous"] = "PerAddress",
            ["Gateway__RateLimits__TokenLimit"] = "2",
            ["Gateway__RateLimits__TokensPerPeriod"] = "1",
            ["Gateway__RateLimits__ReplenishmentPeriod"] = "01:00:00",
            // The cost counters exist only for priced models; the superseded stream below is one.
            ["Gateway__Pricing__Models__mock-1__OutputPerMillion"] = "10",
            // llm_gateway_upstream_retries_total exists once an attempt failed over: a destination tried first
            // (alphabetically) where nothing listens sends the first request to the mock on a second attempt.
            ["ReverseProxy__Clusters__llm__LoadBalancingPolicy"] = "FirstAlphabetical",
            ["ReverseProxy__Clusters__llm__Destinations__a-dead__Address"] = $"http://127.0.0.1:{ClosedPort()}/",
            // The resume series exist on a resumable route once a stream detached, a resume was answered, and a
            // detached stream's undelivered tokens were counted (below).
            ["ReverseProxy__Routes__llm__Metadata__SessionStreams.Resume"] = "00:00:30",
        });
        using var http = new HttpClient { BaseAddress = gateway.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };

        // A slow stream, superseded by a short one for the same session once its first event arrived.
        using var first = await http.SendAsync(Chat("deploy-metrics", maxTokens: 200, tokensPerSecond: 20), HttpCompletionOption.ResponseHeadersRead);
        first.EnsureSuccessStatusCode();
        var firstBody = new StreamReader(await first.Content.ReadAsStreamAsync());
        while (await firstBody.ReadLineAsync() is { } line && !line.StartsWith("data:", StringComparison.Ordinal))
        {
        }

        using var second = await http.SendAsync(Chat("deploy-metrics", maxTokens: 5, tokensPerSecond: null), HttpCompletionOption.ResponseHeadersRead);
        second.EnsureSuccessStatusCode();
        var secondText = await second.Content.ReadAsStringAsync();
        var firstRest = await firstBody.ReadToEndAsync();
        Assert.Contains("superseded", firstRest, StringComparison.Ordinal);
        Assert.Contains("[DONE]", secondText, StringComparison.Ordinal);
        // A stream whose client drops detaches; a resume with an id of no stream is unavailable; the stop ends the
        // detached stream, and the tokens it generated for nobody are counted. Under credentials of their own: each
        // tenant has a bucket of two requests here.
        using (var dropping = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = gateway.BaseAddress })
        {
            using var open = Chat("deploy-resume", maxTokens: 200, tokensPerSecond: 20);
            open.Headers.Add("Authorization", "Bearer deploy-resume");
            var detached = await dropping.SendAsync(open, HttpCompletionOption.ResponseHeadersRead);
            var detachedBody = new StreamReader(await detached.Content.ReadAsStreamAsync());
            while (await detachedBody.ReadLineAsync() is { } line && !line.StartsWith("data:", StringComparison.Ordinal))
            {
            }

            detached.Dispose();
        }

        // Once the gateway has seen the drop (its detached gauge says so), three more tokens are generated for nobody.
        for (var deadline = DateTime.UtcNow.AddSeconds(30); DateTime.UtcNow < deadline;)
        {
            var text = await http.GetStringAsync("metrics");
            if (text.Split('\n').Any(l => l.StartsWith("llm_gateway_resume_detached{", StringComparison.Ordinal) && l[(l.LastIndexOf('}') + 1)..].Trim().Split(' ')[0] == "1"))
            {
                break;
            }
        }

        var atDetach = mock.Ledger.Snapshot().Single(e => e.SessionId == "deploy-resume").TokensSent;
        await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == "deploy-resume" && e.TokensSent >= atDetach + 3), TimeSpan.FromSeconds(30));
        using (var resume = Chat("deploy-resume", maxTokens: 5, tokensPerSecond: null))
        {
            resume.Headers.Add("Last-Event-ID", "no-such-stream");
            resume.Headers.Add("Authorization", "Bearer deploy-resume-other");
            using var unavailable = await http.SendAsync(resume);
            Assert.Equal(System.Net.HttpStatusCode.Conflict, unavailable.StatusCode);
        }

        using (var stopRequest = new HttpRequestMessage(HttpMethod.Post, "v1/sessions/deploy-resume/cancel"))
        {
            stopRequest.Headers.Add("Authorization", "Bearer deploy-resume");
            using var stop = await http.SendAsync(stopRequest);
            Assert.True(stop.IsSuccessStatusCode, $"stop answered {(int)stop.StatusCode}");
        }

        await mock.Ledger.WaitForAsync(l => l.Any(e => e.SessionId == "deploy-resume" && e.EndedAt is not null), TimeSpan.FromSeconds(30));
        using var refused = await http.SendAsync(Chat("deploy-metrics-refused", maxTokens: 5, tokensPerSecond: null));
        Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, refused.StatusCode);

        var pending = PendingNames();
        var required = UsedNames().Keys.Where(n => !Synthetic.Contains(n) && !pending.Contains(Family(n))).ToHashSet();

        // A stream's figures are recorded before its response ends, and both responses were read
        // to their end above, so one scrape holds them; the stopped detached stream's undelivered tokens are counted
        // as its request ends, just after its upstream did.
        var (exported, status) = await ScrapeAsync(http);
        for (var deadline = DateTime.UtcNow.AddSeconds(30); !exported.Contains("llm_gateway_resume_tokens_undelivered_total") && DateTime.UtcNow < deadline;)
        {
            (exported, status) = await ScrapeAsync(http);
        }

        var missing = required.Where(n => !exported.Contains(n)).Order(StringComparer.Ordinal).ToList();
        Assert.True(missing.Count == 0,
            "Used in deploy/prometheus/rules.yml or deploy/grafana/llm-gateway.json but not in the gateway's /metrics " +
            "(list a name a later issue exports in deploy/metrics-pending.txt):\n  " + string.Join("\n  ", missing) +
            $"\nGET /metrics answered {status}; exported:\n  " + string.Join("\n  ", exported.Order(StringComparer.Ordinal)));
    }

    private static int ClosedPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static HttpRequestMessage Chat(string session, int maxTokens, int? tokensPerSecond)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions")
        {
            Content = new StringContent(
                $$"""{"model":"mock-1","stream":true,"max_tokens":{{maxTokens}},"messages":[{"role":"user","content":"tell me about deploys"}]}""",
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Add("X-Session-Id", session);
        request.Headers.Add("X-Mock-Completion-Tokens", maxTokens.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (tokensPerSecond is { } rate)
        {
            request.Headers.Add("X-Mock-Tokens-Per-Second", rate.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return request;
    }

    /// <summary>Sample names in the Prometheus text exposition (histograms as their _bucket/_sum/_count series).</summary>
    private static async Task<(HashSet<string> Names, string Status)> ScrapeAsync(HttpClient http)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "metrics");
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("text/plain"));
        using var response = await http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var status = $"{(int)response.StatusCode} {response.Content.Headers.ContentType}";
        if (!response.IsSuccessStatusCode)
        {
            return (names, status);
        }

        foreach (var line in text.Split('\n'))
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var end = line.IndexOfAny(['{', ' ']);
            names.Add(end < 0 ? line : line[..end]);
        }

        return (names, status);
    }

    /// <summary>Each metric name used, with where it is used.</summary>
    private static Dictionary<string, List<string>> UsedNames()
    {
        var used = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        void Add(string expr, string where)
        {
            foreach (var name in PromQl.MetricNames(expr))
            {
                (used.TryGetValue(name, out var list) ? list : used[name] = []).Add(where);
            }
        }

        foreach (var rule in RuleFiles.Rules())
        {
            Add((string)rule["expr"]!, $"rules.yml {rule["alert"] ?? rule["record"]}");
        }

        foreach (var (expr, where) in DashboardQueries(Dashboard()))
        {
            Add(expr, where);
        }

        return used;
    }

    private static JsonObject Dashboard() =>
        JsonNode.Parse(File.ReadAllText(Repo.PathOf("deploy/grafana/llm-gateway.json")))!.AsObject();

    private static IEnumerable<(string Expr, string Where)> DashboardQueries(JsonObject dashboard)
    {
        foreach (var variable in dashboard["templating"]?["list"]?.AsArray() ?? [])
        {
            var query = variable!["query"];
            var text = query is JsonObject q ? (string?)q["query"] : (string?)(query as JsonValue);
            if ((string?)variable["type"] == "query" && text is not null)
            {
                yield return (text, $"dashboard variable {variable["name"]}");
            }
        }

        var panels = new Stack<JsonNode>(dashboard["panels"]!.AsArray()!);
        while (panels.TryPop(out var panel))
        {
            foreach (var nested in panel["panels"]?.AsArray() ?? [])
            {
                panels.Push(nested!);
            }

            foreach (var target in panel["targets"]?.AsArray() ?? [])
            {
                if ((string?)target!["expr"] is { } expr)
                {
                    yield return (expr, $"dashboard panel {panel["title"]}");
                }
            }
        }
    }

    private static HashSet<string> PendingNames() =>
        File.ReadAllLines(Repo.PathOf("deploy/metrics-pending.txt"))
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(Family)
            .ToHashSet(StringComparer.Ordinal);

    /// <summary>A histogram's series share its family name.</summary>
    private static string Family(string name)
    {
        foreach (var suffix in HistogramSuffixes)
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal))
            {
                return name[..^suffix.Length];
            }
        }

        return name;
    }
}
