namespace Gateway.Resume;

/// <summary>One resume's hold on a stream: a newer resume of the same stream supersedes it.</summary>
internal sealed class Resumer
{
    private readonly CancellationTokenSource _superseded = new();

    public CancellationToken Superseded => _superseded.Token;

    public void Supersede() => _superseded.Cancel();
}
