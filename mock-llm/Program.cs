using MockLlm.Hosting;

namespace MockLlm;

// An explicit, namespaced Program rather than top-level statements: the test project references this
// project and the gateway, and two generated global Program types would be ambiguous there.
internal static class Program
{
    private static void Main(string[] args)
    {
        // Content root = the output folder, so appsettings.json is found however `dotnet run` is invoked.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });
        builder.UseDefaultUrlWhenUnset();
        builder.AddMockLlm();

        var app = builder.Build();
        app.MapMockLlm();
        app.Run();
    }
}
