using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Yarp.ReverseProxy.Model;

namespace Gateway.Affinity;

/// <summary>
/// Rendezvous (highest-random-weight) hashing: a session goes to the destination whose id scores highest
/// with its scope. Every replica computes the same answer from the same destination ids; when a
/// destination drops out only its own sessions move (to their second choice), and they spread evenly.
/// </summary>
internal static class Rendezvous
{
    // Destination ids come from configuration, so this stays as small as the clusters.
    private static readonly ConcurrentDictionary<string, ulong> IdHashes = new(StringComparer.Ordinal);

    /// <summary>The highest-scoring destination of <paramref name="destinations"/> other than <paramref name="except"/>; null when none.</summary>
    public static DestinationState? Pick(ulong scope, IReadOnlyList<DestinationState> destinations, DestinationState? except = null)
    {
        DestinationState? best = null;
        var bestScore = 0UL;
        for (var i = 0; i < destinations.Count; i++)
        {
            var destination = destinations[i];
            if (ReferenceEquals(destination, except))
            {
                continue;
            }

            var score = Score(scope, destination.DestinationId);
            if (best is null || score > bestScore || (score == bestScore && string.CompareOrdinal(destination.DestinationId, best.DestinationId) < 0))
            {
                best = destination;
                bestScore = score;
            }
        }

        return best;
    }

    public static ulong Score(ulong scope, string destinationId) => Mix(scope ^ IdHashes.GetOrAdd(destinationId, HashId));

    private static ulong HashId(string id)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(Encoding.UTF8.GetBytes(id), hash);
        return BinaryPrimitives.ReadUInt64LittleEndian(hash);
    }

    /// <summary>SplitMix64's finaliser: every input bit flips about half the output bits.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
