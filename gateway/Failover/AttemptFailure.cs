using System.Net.Http;
using System.Net.Sockets;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Failover;

/// <summary>Why an attempt failed before any response byte, as far as it matters for trying another destination.</summary>
internal enum AttemptFailure
{
    /// <summary>Not a failure another destination could fix, or a response arrived.</summary>
    None,
    /// <summary>The connection could not be made (refused, unreachable): the model server never saw the request.</summary>
    Connect,
    /// <summary>The connect timed out (YARP's client: 15 s).</summary>
    ConnectTimeout,
    /// <summary>The destination's name did not resolve.</summary>
    Dns,
    /// <summary>The TLS handshake failed.</summary>
    Tls,
    /// <summary>The connection was reset or closed after the request (or part of it) was sent, before any response byte.</summary>
    Reset,
}

internal static class AttemptFailures
{
    public static string ToLabel(this AttemptFailure failure) => failure switch
    {
        AttemptFailure.Connect => "connect",
        AttemptFailure.ConnectTimeout => "connect_timeout",
        AttemptFailure.Dns => "dns",
        AttemptFailure.Tls => "tls",
        AttemptFailure.Reset => "reset",
        _ => "none",
    };

    /// <summary>Nothing of the request reached a model server: the destination is down, and safe to skip.</summary>
    public static bool NeverReached(this AttemptFailure failure) => failure is AttemptFailure.Connect or AttemptFailure.ConnectTimeout or AttemptFailure.Dns or AttemptFailure.Tls;

    /// <summary>What YARP's forwarder reported, read as an <see cref="AttemptFailure"/>.</summary>
    public static AttemptFailure Of(IForwarderErrorFeature? error)
    {
        if (error is null)
        {
            return AttemptFailure.None;
        }

        switch (error.Error)
        {
            case ForwarderError.Request:
                for (var e = error.Exception; e is not null; e = e.InnerException)
                {
                    switch (e)
                    {
                        case HttpRequestException { HttpRequestError: HttpRequestError.NameResolutionError }:
                            return AttemptFailure.Dns;
                        case HttpRequestException { HttpRequestError: HttpRequestError.SecureConnectionError }:
                            return AttemptFailure.Tls;
                        case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError }:
                        case SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable }:
                            return AttemptFailure.Connect;
                        case HttpRequestException { HttpRequestError: HttpRequestError.ResponseEnded }:
                        case SocketException { SocketErrorCode: SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown }:
                            return AttemptFailure.Reset;
                    }
                }

                return error.Exception is HttpRequestException { InnerException: IOException } ? AttemptFailure.Reset : AttemptFailure.None;
            case ForwarderError.RequestBodyDestination:
                return AttemptFailure.Reset; // the model server stopped reading the body: it failed, not the client
            case ForwarderError.RequestTimedOut when HasTimeout(error.Exception):
                // SocketsHttpHandler's ConnectTimeout; YARP reports it as its own request timeout.
                return AttemptFailure.ConnectTimeout;
            default:
                return AttemptFailure.None;
        }
    }

    private static bool HasTimeout(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is TimeoutException)
            {
                return true;
            }
        }

        return false;
    }
}
