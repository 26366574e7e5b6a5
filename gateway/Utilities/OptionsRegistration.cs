using Microsoft.Extensions.Options;

namespace Gateway.Utilities;

internal static class OptionsRegistration
{
    /// <summary>Binds <typeparamref name="T"/> from <paramref name="sectionName"/>, validates its data annotations
    /// (and <see cref="System.ComponentModel.DataAnnotations.IValidatableObject"/>) and does so at start, so a bad
    /// setting stops the gateway with a message naming the key.</summary>
    public static OptionsBuilder<T> AddGatewayOptions<T>(this IServiceCollection services, string sectionName) where T : class =>
        services.AddOptions<T>()
            .BindConfiguration(sectionName)
            .ValidateDataAnnotations()
            .ValidateOnStart();
}
