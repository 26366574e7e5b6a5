using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using MockLlm.Generation;
using MockLlm.Protocols;
using MockLlm.Recording;

namespace MockLlm.Hosting;

/// <summary>The one composition shared by <c>Program</c> and <c>MockLlmServer</c>.</summary>
internal static class MockLlmHostingExtensions
{
    /// <summary>Where the standalone process listens when nothing else says so.</summary>
    public const string DefaultUrl = "http://localhost:5100";

    /// <param name="fixedOptions">When set (in-process hosting), used as is and configuration is ignored.</param>
    public static WebApplicationBuilder AddMockLlm(this WebApplicationBuilder builder, MockLlmOptions? fixedOptions = null)
    {
        var services = builder.Services;
        var options = services.AddOptions<MockLlmOptions>();
        if (fixedOptions is null)
        {
            options.Configure<IConfiguration>(BindFromConfiguration);
        }
        else
        {
            var copy = fixedOptions.Clone();
            options.Configure(o =>
            {
                o.DefaultCompletionTokens = copy.DefaultCompletionTokens;
                o.TokensPerSecond = copy.TokensPerSecond;
                o.TimeToFirstTokenMs = copy.TimeToFirstTokenMs;
                o.Models = copy.Models;
            });
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MockLlmOptions>, MockLlmOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new Ledger(sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton<HealthProbes>();
        services.TryAddSingleton<TokenStreamer>();
        return builder;
    }

    public static IEndpointRouteBuilder MapMockLlm(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapOpenAi();
        endpoints.MapResponses();
        endpoints.MapAnthropic();
        endpoints.MapGemini();
        endpoints.MapTgi();
        endpoints.MapLlamaCpp();
        endpoints.MapOllama();
        endpoints.MapSeed();
        endpoints.MapLedger();

        // For container probes (deploy/k8s) and balancers' active health checks: answers as soon as the server
        // accepts requests; /health is where vLLM, TGI and llama.cpp answer the same question.
        foreach (var path in new[] { "/healthz", "/health" })
        {
            endpoints.MapGet(path, static (HealthProbes probes) =>
            {
                probes.Probed();
                return TypedResults.Text("ok");
            });
        }
        return endpoints;
    }

    /// <summary>Applies <see cref="DefaultUrl"/> only when no listening address is configured in any
    /// form (--urls / ASPNETCORE_URLS, http(s)_ports, Kestrel:Endpoints), so explicit settings always win.</summary>
    public static WebApplicationBuilder UseDefaultUrlWhenUnset(this WebApplicationBuilder builder)
    {
        var config = builder.Configuration;
        if (string.IsNullOrEmpty(config["urls"])
            && string.IsNullOrEmpty(config["http_ports"])
            && string.IsNullOrEmpty(config["https_ports"])
            && !config.GetSection("Kestrel:Endpoints").Exists())
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        return builder;
    }

    private static void BindFromConfiguration(MockLlmOptions options, IConfiguration configuration)
    {
        var section = configuration.GetSection(MockLlmOptions.SectionName);
        var defaultModels = options.Models;
        section.Bind(options);

        // The binder appends configured array items to the default ones; a configured list should replace them.
        var configuredModels = section.GetSection(nameof(MockLlmOptions.Models)).Get<string[]>();
        options.Models = configuredModels is { Length: > 0 } ? configuredModels : defaultModels;
    }
}
