using System.Collections.Concurrent;
using System.Text;
using Gateway.Deploy.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using MockLlm;

namespace Gateway.Deploy.Tests.Usage;

/// <summary>
/// The usage record through OpenTelemetry's logs pipeline, enabled by configuration alone
/// (<c>OTEL_EXPORTER_OTLP_ENDPOINT</c>): the gateway process posts it to an OTLP/HTTP receiver on loopback as a
/// log record of category <c>Gateway.Usage</c> whose attributes are the record's fields.
/// </summary>
[Trait(TestCategory.Name, TestCategory.Slow)]
public sealed class UsageOtlpTests
{
    [Fact]
    public async Task OtlpEndpointSet_UsageRecordsArriveAsOtlpLogRecordsWithTheirFields()
    {
        var logs = new ConcurrentQueue<byte[]>();
        var received = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var receiver = await StartReceiverAsync(async context =>
        {
            using var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            if (context.Request.Path == "/v1/logs")
            {
                logs.Enqueue(body.ToArray());
                if (Encoding.UTF8.GetString(body.ToArray()).Contains("Gateway.Usage", StringComparison.Ordinal))
                {
                    received.TrySetResult();
                }
            }

            context.Response.ContentType = "application/x-protobuf";
        });
        var endpoint = receiver.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.Single();

        await using var mock = await MockLlmServer.StartAsync(new MockLlmOptions { TokensPerSecond = 200, TimeToFirstTokenMs = 5 });
        await using var gateway = await GatewayProcess.StartAsync(new Dictionary<string, string>
        {
            ["ReverseProxy__Clusters__llm__Destinations__primary__Address"] = mock.BaseAddress.ToString(),
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BLRP_SCHEDULE_DELAY"] = "200",
        });
        using var http = Streaming.Client(gateway.BaseAddress);
        using (var response = await Streaming.SendAsync(http, "/v1/chat/completions", "otlp-session-9c1", 6, null, "Bearer sk-otlp-secret"))
        {
            Assert.Equal("[DONE]", (await Streaming.ReadToEndAsync(response)).Data[^1]);
        }

        await received.Task.WaitAsync(Streaming.Timeout);

        // OTLP's protobuf keeps strings as UTF-8 bytes: the category, each attribute key and the outcome are there as text.
        var text = Encoding.UTF8.GetString(logs.Single(b => Encoding.UTF8.GetString(b).Contains("Gateway.Usage", StringComparison.Ordinal)));
        foreach (var field in new[] { "route", "api", "outcome", "tenant", "sessionKeyHash", "completionTokens", "durationMs", "completed", "chat_completions" })
        {
            Assert.Contains(field, text, StringComparison.Ordinal);
        }

        Assert.DoesNotContain("sk-otlp-secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("otlp-session-9c1", text, StringComparison.Ordinal);
    }

    private static async Task<WebApplication> StartReceiverAsync(RequestDelegate handle)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.Run(handle);
        await app.StartAsync();
        return app;
    }
}
