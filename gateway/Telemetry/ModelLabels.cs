using System.Collections.Concurrent;
using Microsoft.Extensions.Options;
using Gateway.Utilities;

namespace Gateway.Telemetry;

/// <summary>Turns a client-supplied model name into a bounded metric label.</summary>
internal sealed class ModelLabels
{
    public const string Other = "other";
    public const string Unknown = "unknown";
    private const int MaxLength = 64;

    private readonly HashSet<string>? _configured;
    private readonly int _maxAdmitted;
    private readonly ConcurrentDictionary<string, string> _admitted = new(StringComparer.Ordinal);
    private int _admittedCount;

    public ModelLabels(IOptions<TelemetryOptions> options)
    {
        var models = options.Value.Models;
        _configured = models.Length > 0 ? new HashSet<string>(models, StringComparer.Ordinal) : null;
        _maxAdmitted = options.Value.MaxModelLabels;
    }

    public string For(string? model)
    {
        if (string.IsNullOrEmpty(model))
        {
            return Unknown;
        }

        if (model.Length > MaxLength || !PrintableAscii.IsAll(model))
        {
            return Other;
        }

        if (_configured is not null)
        {
            return _configured.TryGetValue(model, out var known) ? known : Other;
        }

        if (_admitted.TryGetValue(model, out var label))
        {
            return label;
        }

        // Counted here, not with ConcurrentDictionary.Count (it takes every lock, and a caller sending a
        // new model name with each request would make that the hot path). A race may admit a few past
        // the limit; the bound stays within a handful.
        if (Volatile.Read(ref _admittedCount) >= _maxAdmitted)
        {
            return Other;
        }

        var admitted = _admitted.GetOrAdd(model, model);
        if (ReferenceEquals(admitted, model))
        {
            Interlocked.Increment(ref _admittedCount);
        }

        return admitted;
    }

}
