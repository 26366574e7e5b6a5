using System.Globalization;

namespace Gateway.Tests.Infrastructure;

/// <summary>One sample of the Prometheus text format.</summary>
internal sealed record PromSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>Reads the Prometheus text exposition format, enough for the gateway's own output.</summary>
internal static class PromText
{
    public static async Task<IReadOnlyList<PromSample>> ParseAsync(HttpClient client, string path = "/metrics") =>
        Parse(await client.GetStringAsync(path));

    /// <summary>The stack's gateway's <c>/metrics</c>, parsed.</summary>
    public static async Task<IReadOnlyList<PromSample>> ScrapeAsync(Stack stack) => Parse(await stack.Client.GetStringAsync("/metrics"));

    public static IReadOnlyList<PromSample> Parse(string text)
    {
        var samples = new List<PromSample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            var brace = line.IndexOf('{');
            string name;
            string rest;
            if (brace >= 0)
            {
                name = line[..brace];
                var close = line.LastIndexOf('}');
                foreach (var pair in SplitLabels(line[(brace + 1)..close]))
                {
                    labels[pair.Key] = pair.Value;
                }

                rest = line[(close + 1)..].Trim();
            }
            else
            {
                var space = line.IndexOf(' ');
                name = line[..space];
                rest = line[(space + 1)..].Trim();
            }

            var value = rest.Split(' ')[0];
            samples.Add(new PromSample(name, labels, value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                "NaN" => double.NaN,
                _ => double.Parse(value, CultureInfo.InvariantCulture),
            }));
        }

        return samples;
    }

    /// <summary>The sum of the samples named <paramref name="name"/> whose labels include all of <paramref name="match"/>.</summary>
    public static double Sum(IReadOnlyList<PromSample> samples, string name, params (string Label, string Value)[] match) =>
        samples.Where(s => s.Name == name && match.All(m => s.Labels.TryGetValue(m.Label, out var v) && v == m.Value)).Sum(s => s.Value);

    private static IEnumerable<KeyValuePair<string, string>> SplitLabels(string body)
    {
        var i = 0;
        while (i < body.Length)
        {
            var eq = body.IndexOf('=', i);
            var key = body[i..eq].Trim().TrimStart(',').Trim();
            var start = body.IndexOf('"', eq) + 1;
            var value = new System.Text.StringBuilder();
            var j = start;
            for (; j < body.Length && body[j] != '"'; j++)
            {
                if (body[j] == '\\' && j + 1 < body.Length)
                {
                    j++;
                    value.Append(body[j] == 'n' ? '\n' : body[j]);
                }
                else
                {
                    value.Append(body[j]);
                }
            }

            yield return new KeyValuePair<string, string>(key, value.ToString());
            i = j + 1;
        }
    }
}
