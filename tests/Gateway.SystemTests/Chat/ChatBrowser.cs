using Microsoft.Playwright;

namespace Gateway.Tests.Chat;

/// <summary>One browser tab on the gateway's chat page; collects page errors (a CSP violation or a
/// script error fails the test) and saves a screenshot under TestResults/ when disposed.</summary>
internal sealed class ChatBrowser : IAsyncDisposable
{
    private readonly IBrowserContext _context;
    private readonly string _screenshot;
    private readonly List<string> _errors = [];

    private ChatBrowser(IBrowserContext context, IPage page, string screenshot)
    {
        _context = context;
        _screenshot = screenshot;
        Page = page;
        page.Console += (_, message) =>
        {
            if (message.Type == "error")
            {
                lock (_errors)
                {
                    _errors.Add(message.Text);
                }
            }
        };
        page.PageError += (_, error) =>
        {
            lock (_errors)
            {
                _errors.Add(error);
            }
        };
    }

    public IPage Page { get; }

    public ILocator Prompt => Page.Locator("#prompt");
    public ILocator Answer => Page.Locator("#answer");
    public ILocator Marker => Page.Locator("#marker");
    public ILocator Saved => Page.Locator("#saved");
    public ILocator Stop => Page.Locator("#stop");

    public IReadOnlyList<string> Errors
    {
        get
        {
            lock (_errors)
            {
                return [.. _errors];
            }
        }
    }

    public static async Task<ChatBrowser> OpenAsync(Chromium chromium, Uri gateway, string screenshotName)
    {
        var context = await chromium.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = gateway.ToString(),
            ViewportSize = new ViewportSize { Width = 1000, Height = 760 },
        });
        context.SetDefaultTimeout((float)Infrastructure.Wait.Timeout.TotalMilliseconds);
        var page = await context.NewPageAsync();
        return new ChatBrowser(context, page, Chromium.ArtifactPath($"chat-{screenshotName}.png"));
    }

    /// <summary>Opens the page and waits for Vue to have mounted it.</summary>
    public async Task<string> LoadAsync(string query = "")
    {
        var response = await Page.GotoAsync("/chat/" + query);
        Assert.NotNull(response);
        Assert.Equal(200, response.Status);
        await Assertions.Expect(Page.Locator("#session")).Not.ToBeEmptyAsync();
        return await Page.Locator("#session").InnerTextAsync();
    }

    /// <summary>Waits until the answer shows at least <paramref name="words"/> words and returns it.</summary>
    public async Task<string> WaitForWordsAsync(int words)
    {
        await Page.WaitForFunctionAsync(
            "n => document.querySelector('#answer').textContent.trim().split(/\\s+/).filter(Boolean).length >= n", words);
        return (await Answer.TextContentAsync())!.Trim();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Page.ScreenshotAsync(new PageScreenshotOptions { Path = _screenshot, FullPage = true });
        }
        finally
        {
            await _context.CloseAsync();
        }
    }
}
