namespace Gateway.Testing;

/// <summary>
/// The xunit trait on test classes that start a real external program (redis-server, llama-server, chromium,
/// prometheus, nginx, promtool, kubectl, the gateway or the bench as a child process) or otherwise take seconds:
/// <c>[Trait(TestCategory.Name, TestCategory.Slow)]</c>. <c>dotnet test --filter "Category!=Slow"</c> runs the
/// rest (docs/testing.md). The split into projects (unit, functional, system) says what a test starts; the trait
/// still marks the slow ones within a project.
/// </summary>
internal static class TestCategory
{
    public const string Name = "Category";

    public const string Slow = "Slow";
}
