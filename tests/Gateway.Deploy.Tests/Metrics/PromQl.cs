using System.Text.RegularExpressions;

namespace Gateway.Deploy.Tests.Metrics;

/// <summary>The metric names a PromQL expression (or a Grafana query using one) selects. A small
/// lexer, not a parser: it drops strings, label matchers, ranges, grouping clauses and Grafana
/// variables, then every identifier that is not a function call or a keyword is a metric name.</summary>
internal static partial class PromQl
{
    private static readonly HashSet<string> Keywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "offset",
        "bool", "inf", "nan", "atan2",
    };

    public static IEnumerable<string> MetricNames(string expr)
    {
        // Grafana's label_values(metric, label): only the first argument is a selector.
        expr = LabelValues().Replace(expr, "$1");
        expr = Strings().Replace(expr, " ");
        expr = Braces().Replace(expr, " ");
        expr = Brackets().Replace(expr, " ");
        expr = Grouping().Replace(expr, " ");
        expr = Variables().Replace(expr, " ");
        foreach (Match m in Identifier().Matches(expr))
        {
            var name = m.Groups["name"].Value;
            if (m.Groups["call"].Success || Keywords.Contains(name))
            {
                continue;
            }

            yield return name;
        }
    }

    [GeneratedRegex(@"label_values\(\s*([^,()]+(?:\{[^}]*\})?)\s*,\s*\w+\s*\)")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"""(?:[^""\\]|\\.)*""|'(?:[^'\\]|\\.)*'|`[^`]*`")]
    private static partial Regex Strings();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", RegexOptions.IgnoreCase)]
    private static partial Regex Grouping();

    [GeneratedRegex(@"\$\{[^}]*\}|\$\w+")]
    private static partial Regex Variables();

    [GeneratedRegex(@"(?<![\w.:])(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?<call>\s*\()?")]
    private static partial Regex Identifier();
}
