using Gateway.Utilities;

namespace Gateway.Resume;

internal static class ResumeExtensions
{
    /// <summary>Resumable streams: the store of this replica's logs and the replay of a <c>Last-Event-ID</c> request.</summary>
    public static IServiceCollection AddResume(this IServiceCollection services)
    {
        services.AddGatewayOptions<ResumeOptions>(ResumeOptions.SectionName);
        services.AddSingleton<RedisResumeMirror>();
        services.AddSingleton<RedisResumeReader>();
        services.AddSingleton<ResumeStore>();
        services.AddSingleton<ResumeReplay>();
        return services;
    }
}
