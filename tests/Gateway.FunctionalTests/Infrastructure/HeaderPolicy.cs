using System.ClientModel.Primitives;

namespace Gateway.Tests.Infrastructure;

/// <summary>Sets <paramref name="headers"/> on every request an OpenAI SDK client sends (a session id, the
/// mock's pacing headers): add it with <c>options.AddPolicy(policy, PipelinePosition.PerCall)</c>.</summary>
internal sealed class HeaderPolicy(IReadOnlyDictionary<string, string> headers) : PipelinePolicy
{
    public HeaderPolicy(string name, string value)
        : this(new Dictionary<string, string> { [name] = value })
    {
    }

    public override void Process(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        Apply(message);
        ProcessNext(message, pipeline, currentIndex);
    }

    public override ValueTask ProcessAsync(PipelineMessage message, IReadOnlyList<PipelinePolicy> pipeline, int currentIndex)
    {
        Apply(message);
        return ProcessNextAsync(message, pipeline, currentIndex);
    }

    private void Apply(PipelineMessage message)
    {
        foreach (var (name, value) in headers)
        {
            message.Request.Headers.Set(name, value);
        }
    }
}
