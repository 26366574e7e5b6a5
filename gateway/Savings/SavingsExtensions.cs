using Gateway.Telemetry;
using Gateway.Utilities;
using Microsoft.Extensions.Options;

namespace Gateway.Savings;

internal static class SavingsExtensions
{
    /// <summary>Registers stream accounting: tokens streamed, the estimate of tokens a cancellation saved
    /// (options from <c>Gateway:Savings</c>), per-session totals, and the background tokenizer recount.</summary>
    public static IServiceCollection AddSavings(this IServiceCollection services)
    {
        services.AddGatewayOptions<SavingsOptions>(SavingsOptions.SectionName);
        services.AddSingleton<SavingsEstimator>();
        services.AddSingleton<StreamAccounting>();
        services.AddGatewayOptions<UsageOptions>(UsageOptions.SectionName);
        services.AddSingleton<UsageRecords>();
        services.AddSingleton<SessionSavings>();
        services.AddSingleton<TokenizerCounting>();
        services.AddHostedService(sp => sp.GetRequiredService<TokenizerCounting>());
        return services;
    }

    /// <summary>Registers model prices (<c>Gateway:Pricing</c>), so cancellations are also counted in money.</summary>
    public static IServiceCollection AddPricing(this IServiceCollection services)
    {
        services.AddGatewayOptions<PricingOptions>(PricingOptions.SectionName);
        services.AddSingleton<ModelPrices>();
        services.AddSingleton(sp => new CostCurrency(sp.GetRequiredService<IOptions<PricingOptions>>().Value.Currency));
        return services;
    }
}
