using Gateway.Utilities;
using Microsoft.Extensions.Options;

namespace Gateway.Chat;

/// <summary>Serves the chat page at <c>/chat/</c> when <c>Gateway:Chat:Enabled</c> is true.</summary>
internal static class ChatPageExtensions
{
    public const string PagePath = "/chat/";

    // The page only talks to this origin. 'unsafe-eval' is there because Vue's global build compiles
    // the in-page template with new Function(); nothing else may run, and no CDN can be reached.
    private const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self'; img-src 'self' data:; " +
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static WebApplicationBuilder AddChatPage(this WebApplicationBuilder builder)
    {
        builder.Services.AddGatewayOptions<ChatOptions>(ChatOptions.SectionName);
        builder.Services.AddSingleton<ChatPageFiles>();
        return builder;
    }

    /// <summary>Maps <c>/chat</c> and <c>/chat/**</c>; maps nothing when the page is disabled, so the
    /// path then reaches the proxy. Call before <c>MapReverseProxy</c>.</summary>
    public static IEndpointRouteBuilder MapChatPage(this IEndpointRouteBuilder endpoints)
    {
        if (!endpoints.ServiceProvider.GetRequiredService<IOptions<ChatOptions>>().Value.Enabled)
        {
            return endpoints;
        }

        // One endpoint for /chat and /chat/**: routing ignores a trailing slash, so "/chat" and
        // "/chat/" would match the same template.
        endpoints.MapMethods("/chat/{**path}", [HttpMethods.Get, HttpMethods.Head], (HttpContext context, string? path, ChatPageFiles files) =>
        {
            if (string.IsNullOrEmpty(path) && !context.Request.Path.Value!.EndsWith('/'))
            {
                // Relative links in the page need the trailing slash.
                return Results.Redirect($"{context.Request.PathBase}{PagePath}{context.Request.QueryString}");
            }

            var file = files.Find(string.IsNullOrEmpty(path) ? "index.html" : path);
            if (file is null)
            {
                return Results.NotFound();
            }

            var headers = context.Response.Headers;
            headers.CacheControl = "no-cache";
            headers.XContentTypeOptions = "nosniff";
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            return Results.Bytes(file.Content, file.ContentType, entityTag: file.ETag);
        });

        return endpoints;
    }
}
