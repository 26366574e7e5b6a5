using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Affinity;

/// <summary>
/// What a session's destination is chosen by: SHA-256 of the cluster and the session key scoped by the
/// caller's credential (<see cref="Sessions.SessionKey.TenantSession"/>). The same session id from two
/// tenants has two scopes; the route is left out so that one conversation reaching a cluster through
/// two routes (Chat Completions and Responses, say) keeps one server's prompt cache.
/// </summary>
internal readonly record struct AffinityScope(string Id, ulong Hash)
{
    public static AffinityScope Of(string clusterId, string tenantSession)
    {
        var text = $"{clusterId}\n{tenantSession}";
        var length = Encoding.UTF8.GetMaxByteCount(text.Length);
        var rented = length > 512 ? ArrayPool<byte>.Shared.Rent(length) : null;
        Span<byte> bytes = rented ?? stackalloc byte[512];
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(bytes[..Encoding.UTF8.GetBytes(text, bytes)], hash);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        return new(Convert.ToHexStringLower(hash[..16]), BinaryPrimitives.ReadUInt64LittleEndian(hash));
    }
}
