using Gateway.Utilities;

namespace Gateway.Tokens;

internal static class TokensExtensions
{
    /// <summary>How completion tokens are counted, from <c>Gateway:Tokens</c>.</summary>
    public static IServiceCollection AddTokenCounting(this IServiceCollection services)
    {
        services.AddGatewayOptions<TokenOptions>(TokenOptions.SectionName);
        return services;
    }
}
