using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Draining;

/// <summary>YARP's own client factory, with the <see cref="DrainingHandler"/> under the forwarder.
/// Requests without a <see cref="DrainContext"/> pass straight through it.</summary>
internal sealed class DrainingHttpClientFactory : ForwarderHttpClientFactory
{
    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler) =>
        new DrainingHandler(base.WrapHandler(context, handler));
}
