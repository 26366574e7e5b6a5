namespace Gateway.Hosting;

internal static class DefaultUrl
{
    /// <summary>
    /// Listens on <paramref name="url"/> only when nothing else chose an address. Putting a <c>Urls</c>
    /// key in appsettings.json instead would silently win over <c>ASPNETCORE_URLS</c>, because
    /// appsettings is read after the ASPNETCORE_ variables.
    /// </summary>
    public static void UseDefaultUrl(this WebApplicationBuilder builder, string url)
    {
        var config = builder.Configuration;
        var chosen = !string.IsNullOrEmpty(config["urls"])
            || !string.IsNullOrEmpty(config["http_ports"])
            || !string.IsNullOrEmpty(config["https_ports"])
            || config.GetSection("Kestrel:Endpoints").GetChildren().Any();
        if (!chosen)
        {
            builder.WebHost.UseUrls(url);
        }
    }
}
