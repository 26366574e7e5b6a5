using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Draining;

/// <summary>YARP's own client factory, with the <see cref="DrainingHandler"/> under the forwarder.
/// Requests without a <see cref="DrainContext"/> pass straight through it.</summary>
internal sealed class DrainingHttpClientFactory : ForwarderHttpClientFactory
{
    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);

        // When YARP stops copying a response early (its client went away), it disposes the upstream
        // body; by default SocketsHttpHandler would then read on for up to 1 MB or 2 s to keep the
        // connection, and the model keeps generating into that read. Closing the connection at once
        // is what stops the model. (Drain routes read their own bodies; see DrainingStream.)
        handler.MaxResponseDrainSize = 0;
        handler.ResponseDrainTimeout = TimeSpan.Zero;
    }

    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler) =>
        new DrainingHandler(base.WrapHandler(context, handler));
}
