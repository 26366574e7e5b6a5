using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests.Infrastructure;

/// <summary>Loopback addresses where nothing listens: a destination that is down, its connections refused.</summary>
internal static class ClosedPorts
{
    /// <summary>A port the OS just gave out and took back: nothing listens there now.</summary>
    public static int Next()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary><see cref="Next"/> as a destination address.</summary>
    public static Uri Address() => new($"http://127.0.0.1:{Next()}/");
}
