using System.Globalization;

namespace Gateway.Bench.Proxies;

/// <summary>CPU time and resident memory of processes, from <c>/proc</c>.</summary>
internal static class ProcessStats
{
    /// <summary>Clock ticks per second in <c>/proc/&lt;pid&gt;/stat</c>: USER_HZ, 100 on every Linux ABI .NET runs on.</summary>
    public const double TicksPerSecond = 100;

    /// <summary>"&lt;CPU model&gt;, &lt;n&gt; GiB": the first <c>model name</c> of <c>/proc/cpuinfo</c> and <c>MemTotal</c>
    /// of <c>/proc/meminfo</c>; "unknown machine" where they cannot be read.</summary>
    public static string MachineDescription()
    {
        try
        {
            var model = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim();
            var memory = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemTotal:", StringComparison.Ordinal))?
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
            var gib = long.TryParse(memory, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var kb)
                ? $", {kb / 1048576.0:F0} GiB"
                : "";
            return (model ?? "unknown processor") + gib;
        }
        catch (IOException)
        {
            return "unknown machine";
        }
    }

    /// <summary>utime + stime of <paramref name="pid"/>, in ticks.</summary>
    public static long CpuTicks(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After "pid (comm) ": state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
        return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
    }

    /// <summary>VmRSS of <paramref name="pid"/> in bytes.</summary>
    public static long RssBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                var kb = line["VmRSS:".Length..].Trim().Split(' ')[0];
                return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    /// <summary><paramref name="pid"/> and its direct children (nginx's workers).</summary>
    public static List<int> WithChildren(int pid)
    {
        var pids = new List<int> { pid };
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var child) || child == pid)
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (int.Parse(fields[1], CultureInfo.InvariantCulture) == pid)
                {
                    pids.Add(child);
                }
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
        }

        return pids;
    }

    /// <summary>The soft limit on open files of this process (children inherit it).</summary>
    public static long OpenFilesLimit()
    {
        foreach (var line in File.ReadLines("/proc/self/limits"))
        {
            if (line.StartsWith("Max open files", StringComparison.Ordinal))
            {
                var parts = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return parts[0] == "unlimited" ? long.MaxValue : long.Parse(parts[0], CultureInfo.InvariantCulture);
            }
        }

        return 1024;
    }
}
