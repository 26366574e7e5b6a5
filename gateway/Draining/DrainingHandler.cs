namespace Gateway.Draining;

/// <summary>
/// Sits under YARP's forwarder for drain routes: the upstream request runs on a token of its own, so
/// when YARP gives it up (its token fires), the request and its response live on and are read to
/// their end in the background instead of being aborted.
/// </summary>
internal sealed class DrainingHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (!request.Options.TryGetValue(DrainContext.OptionKey, out var drain))
        {
            return await base.SendAsync(request, cancellationToken);
        }

        var send = base.SendAsync(request, drain.Stopping);
        try
        {
            var response = await send.WaitAsync(cancellationToken);
            response.Content = new DrainingContent(response.Content, drain);
            return response;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested && !drain.Stopping.IsCancellationRequested)
        {
            // Given up before the response headers: the response is drained whole when it comes.
            drain.Begin();
            _ = DrainWholeAsync(send, drain);
            throw;
        }
    }

    private static async Task DrainWholeAsync(Task<HttpResponseMessage> send, DrainContext drain)
    {
        try
        {
            using var response = await send;
            await using var body = await response.Content.ReadAsStreamAsync(drain.Stopping);
            await DrainingStream.ReadToEndAsync(body, drain.CounterFor(response.Content.Headers.ContentType?.ToString()), drain.Stopping);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // The upstream failed or the gateway is stopping: what was counted is all there is.
        }
        finally
        {
            drain.DrainEnded();
        }
    }
}
