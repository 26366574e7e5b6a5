using System.Runtime.InteropServices;

namespace Gateway.Limits;

/// <summary>
/// A tenant's concurrent-stream slots. A stream with a session key holds its key's slot, shared by every
/// request of that key in flight: a request that supersedes the tenant's own stream takes over the slot
/// of the stream it replaces (a hand-off) instead of a free one, so a person at the limit can still type
/// again, and the replaced stream, ending, gives back nothing. The slot comes back when the key's last
/// request ends. A stream without a session key holds a slot of its own. The registry lets a superseding
/// request go upstream only once the stream it replaced has closed its upstream request, so each slot is
/// at most one live upstream stream at any instant.
/// </summary>
internal sealed class TenantSlots(int limit)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, int> _requestsByKey = new(StringComparer.Ordinal);
    private int _inUse;

    /// <summary>Slots held now.</summary>
    public int InUse
    {
        get
        {
            lock (_gate)
            {
                return _inUse;
            }
        }
    }

    /// <summary>A slot for a request with session key <paramref name="key"/> (the scoped key's value, or
    /// null without one): the key's own while another request of it is in flight, else a free one.
    /// Pair a true answer with <see cref="Return"/>.</summary>
    public bool TryTake(string? key)
    {
        lock (_gate)
        {
            if (key is not null && _requestsByKey.Count > 0)
            {
                ref var requests = ref CollectionsMarshal.GetValueRefOrNullRef(_requestsByKey, key);
                if (!System.Runtime.CompilerServices.Unsafe.IsNullRef(ref requests))
                {
                    requests++;
                    return true;
                }
            }

            if (_inUse >= limit)
            {
                return false;
            }

            _inUse++;
            if (key is not null)
            {
                _requestsByKey[key] = 1;
            }

            return true;
        }
    }

    /// <summary>The request has ended: its key's slot comes back when it was the key's last request.</summary>
    public void Return(string? key)
    {
        lock (_gate)
        {
            if (key is not null)
            {
                ref var requests = ref CollectionsMarshal.GetValueRefOrNullRef(_requestsByKey, key);
                if (--requests > 0)
                {
                    return;
                }

                _requestsByKey.Remove(key);
            }

            _inUse--;
        }
    }
}
