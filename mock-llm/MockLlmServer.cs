using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using MockLlm.Generation;
using MockLlm.Hosting;
using MockLlm.Recording;

namespace MockLlm;

/// <summary>The mock hosted in-process on a loopback port picked by the OS, for tests.</summary>
public sealed class MockLlmServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _disposed;

    private MockLlmServer(WebApplication app, Uri baseAddress)
    {
        _app = app;
        BaseAddress = baseAddress;
        Ledger = app.Services.GetRequiredService<Ledger>();
        HealthProbes = app.Services.GetRequiredService<HealthProbes>();
    }

    /// <summary>Root of the server, with a trailing slash, e.g. <c>http://127.0.0.1:41234/</c>.</summary>
    public Uri BaseAddress { get; }

    public Ledger Ledger { get; }

    /// <summary>The <c>/healthz</c> requests it answered.</summary>
    public HealthProbes HealthProbes { get; }

    /// <summary>Starts Kestrel on <c>127.0.0.1:0</c> with the same endpoints as the standalone process.</summary>
    /// <param name="options">Used as given; configuration files and environment variables are ignored.</param>
    /// <exception cref="Microsoft.Extensions.Options.OptionsValidationException">An option is out of range.</exception>
    public static Task<MockLlmServer> StartAsync(MockLlmOptions? options = null, CancellationToken cancellationToken = default) =>
        StartAsync(options, port: 0, cancellationToken);

    /// <summary>Starts on <c>127.0.0.1:<paramref name="port"/></c>: a test that stopped a server starts it
    /// again where its clients know it.</summary>
    public static Task<MockLlmServer> StartAsync(MockLlmOptions? options, int port, CancellationToken cancellationToken = default) =>
        StartAsync(options, port, time: null, cancellationToken);

    /// <summary>Paces tokens, and stamps the ledger, by <paramref name="time"/>: a test's fake clock decides
    /// when each token is due.</summary>
    public static Task<MockLlmServer> StartAsync(MockLlmOptions? options, TimeProvider time, CancellationToken cancellationToken = default) =>
        StartAsync(options, port: 0, time, cancellationToken);

    private static async Task<MockLlmServer> StartAsync(MockLlmOptions? options, int port, TimeProvider? time, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });

        // A test's output folder can hold another app's appsettings.json, and the environment may set
        // ASPNETCORE_URLS: only the options passed in count.
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection();
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddSimpleConsole();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(5));
        if (time is not null)
        {
            builder.Services.AddSingleton(time);
        }

        builder.AddMockLlm(options ?? new MockLlmOptions());

        var app = builder.Build();
        app.MapMockLlm();
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
            var addresses = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses;
            var address = addresses.First();
            return new MockLlmServer(app, new Uri(address.EndsWith('/') ? address : address + "/"));
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        // Stopping cancels running generations (they watch ApplicationStopping), so this is quick.
        await _app.StopAsync().ConfigureAwait(false);
        await _app.DisposeAsync().ConfigureAwait(false);
    }
}
