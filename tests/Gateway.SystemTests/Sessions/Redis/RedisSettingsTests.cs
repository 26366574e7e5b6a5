using Gateway.Sessions;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Sessions.Redis;

[Collection(RedisCollection.Name)]
public sealed class RedisSettingsTests
{
    [Theory]
    [InlineData("Gateway:Sessions:RedisPrefix", "two words")]
    [InlineData("Gateway:Sessions:Redis", "host:6379,notakeyword=1")]
    [InlineData("Gateway:Sessions:RedisTimeout", "00:01:00")]
    public async Task BadRedisSetting_Start_FailsWithMessageNamingTheKey(string key, string value)
    {
        var settings = GatewayHost.DefaultSettings(new Uri("http://127.0.0.1:9/"));
        settings["Gateway:Sessions:Redis"] = "127.0.0.1:9";
        settings[key] = value;
        // Building the pipeline already resolves the registry, so the error may come from Build or from Start.
        var error = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
        {
            await using var app = GatewayHost.Build(settings);
            await app.StartAsync();
        });
        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NoRedisSetting_InProcessRegistry_NoRedisGauge()
    {
        await using var stack = await Stack.StartAsync();
        Assert.IsType<SessionRegistry>(stack.Gateway.Services.GetRequiredService<ISessionRegistry>());

        var served = await StreamReading.SendAndReadAsync(stack.Client, CrossReplicaTests.Short("solo"));
        Assert.Equal("[DONE]", served.DataEvents[^1]);
        var samples = await PromText.ParseAsync(stack.Client);
        Assert.DoesNotContain(samples, s => s.Name == "llm_gateway_redis_available");
    }
}
