using System.Runtime.InteropServices;

namespace Gateway.Testing;

/// <summary>Signals to a child process: SIGTERM as the kubelet sends it; freezing and thawing with SIGSTOP/SIGCONT,
/// what a server stuck in a long command, a paused VM or a long garbage collection looks like from outside.
/// Linked into both test projects and the bench.</summary>
internal static class ProcessSignals
{
    private const int SigTerm = 15;
    private const int SigCont = 18;
    private const int SigStop = 19;

    /// <summary>Sends SIGTERM: a graceful stop (<see cref="System.Diagnostics.Process.Kill()"/> would send SIGKILL).</summary>
    public static void Terminate(int pid) => Signal(pid, SigTerm);

    /// <summary>Sends SIGSTOP and returns once the kernel reports the process stopped.</summary>
    public static async Task PauseAsync(int pid, TimeSpan timeout)
    {
        Signal(pid, SigStop);
        using var deadline = new CancellationTokenSource(timeout);
        while (State(pid) != 'T')
        {
            await Task.Yield(); // the kernel stops it within a scheduling tick; this waits for that state
            deadline.Token.ThrowIfCancellationRequested();
        }
    }

    /// <summary>Sends SIGCONT: the process goes on from where it was stopped.</summary>
    public static void Resume(int pid) => Signal(pid, SigCont);

    private static void Signal(int pid, int signal)
    {
        if (Kill(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>The state letter in /proc/&lt;pid&gt;/stat (after the parenthesised command name).</summary>
    private static char State(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        return stat[stat.LastIndexOf(')') + 2];
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
