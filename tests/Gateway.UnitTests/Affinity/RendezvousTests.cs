using Gateway.Affinity;
using Gateway.Sessions;

namespace Gateway.Tests.Affinity;

/// <summary>The pick itself, over many more sessions than the wire tests send.</summary>
public sealed class RendezvousTests
{
    private static readonly string[] Ids = ["gpu-a", "gpu-b", "gpu-c"];

    [Theory]
    [InlineData("anonymous-tenant", 1_000)]
    [InlineData("Bearer sk-live-key", 1_000)]
    [InlineData("Bearer sk-live-key", 100_000)]
    public void ManySessions_ThreeDestinations_BusiestWithinAThirdOfQuietest(string credential, int sessions)
    {
        var counts = new int[Ids.Length];
        for (var i = 0; i < sessions; i++)
        {
            counts[Choice(Scope($"session-{i}", credential), Ids)]++;
        }

        Assert.True(counts.Max() <= 1.3 * counts.Min(), $"per destination: {string.Join(", ", counts)}");
    }

    [Fact]
    public void DestinationLeaves_OnlyItsOwnSessionsMove_SpreadOverTheRest()
    {
        string[] four = [.. Ids, "gpu-d"];
        var movedTo = new int[4];
        for (var i = 0; i < 10_000; i++)
        {
            var scope = Scope($"s{i}", null);
            var before = Choice(scope, four);
            var after = Choice(scope, Ids);
            if (before != 3)
            {
                Assert.Equal(before, after); // a session of a destination that stayed does not move
            }
            else
            {
                movedTo[after]++;
            }
        }

        Assert.True(movedTo[..3].Max() <= 1.3 * movedTo[..3].Min(), string.Join(", ", movedTo));
    }

    [Fact]
    public void Scope_DependsOnClusterCredentialAndSessionId_NotOnTheirJoin()
    {
        var a = AffinityScope.Of("llm", SessionKey.TenantSessionOf("Bearer one", "s"));
        Assert.Equal(a, AffinityScope.Of("llm", SessionKey.TenantSessionOf("Bearer one", "s")));
        Assert.NotEqual(a, AffinityScope.Of("llm", SessionKey.TenantSessionOf("Bearer two", "s")));
        Assert.NotEqual(a, AffinityScope.Of("other", SessionKey.TenantSessionOf("Bearer one", "s")));
        Assert.NotEqual(a.Id, AffinityScope.Of("llm", SessionKey.TenantSessionOf("Bearer one", "t")).Id);
        // The stored id is a hash: nothing of the session id or credential in it.
        Assert.Matches("^[0-9a-f]{32}$", a.Id);
        // A session id of any length (the resolver caps it) hashes without failing.
        Assert.Matches("^[0-9a-f]{32}$", AffinityScope.Of("llm", new string('x', 100_000)).Id);
    }

    private static AffinityScope Scope(string session, string? credential) => AffinityScope.Of("llm", SessionKey.TenantSessionOf(credential, session));

    private static int Choice(AffinityScope scope, string[] ids) =>
        Enumerable.Range(0, ids.Length).MaxBy(i => Rendezvous.Score(scope.Hash, ids[i]));
}
