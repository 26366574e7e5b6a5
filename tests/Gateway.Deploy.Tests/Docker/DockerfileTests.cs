using System.Text.Json;
using Gateway.Deploy.Tests.Infrastructure;

namespace Gateway.Deploy.Tests.Docker;

/// <summary>No Docker engine runs in CI: check what the Dockerfiles name exists, and run their publish
/// step here (into a temporary folder, with its own build output) to see it yields the entrypoint.</summary>
public sealed class DockerfileTests
{
    public static TheoryData<string, string> Images => new()
    {
        { "deploy/docker/gateway.Dockerfile", "Gateway.dll" },
        { "deploy/docker/mock-llm.Dockerfile", "MockLlm.dll" },
    };

    [Theory]
    [MemberData(nameof(Images))]
    public void Dockerfile_Stages_UseOfficialImagesNonRootAndPort8080(string dockerfile, string entrypoint)
    {
        var file = Dockerfile.Parse(dockerfile);
        Assert.Equal(["mcr.microsoft.com/dotnet/sdk:10.0", "mcr.microsoft.com/dotnet/aspnet:10.0"], file.From);
        Assert.Equal("app", file.Final("USER"));
        Assert.Equal("8080", file.Final("EXPOSE"));
        Assert.Equal(["dotnet", entrypoint], file.Entrypoint);
    }

    [Theory]
    [MemberData(nameof(Images))]
    public void Dockerfile_CopySources_ExistInTheRepository(string dockerfile, string entrypoint)
    {
        _ = entrypoint;
        var file = Dockerfile.Parse(dockerfile);
        Assert.NotEmpty(file.CopySources);
        foreach (var source in file.CopySources)
        {
            var path = Repo.PathOf(source);
            Assert.True(File.Exists(path) || Directory.Exists(path), $"{dockerfile}: COPY source {source} does not exist");
        }

        Assert.True(File.Exists(Repo.PathOf(dockerfile + ".dockerignore")), "bin/ and obj/ must be kept out of the build context");
    }

    [Trait(TestCategory.Name, TestCategory.Slow)]
    [Theory]
    [MemberData(nameof(Images))]
    public async Task Dockerfile_PublishStep_YieldsTheEntrypoint(string dockerfile, string entrypoint)
    {
        var file = Dockerfile.Parse(dockerfile);
        var publish = Assert.Single(file.Runs, r => r.StartsWith("dotnet publish ", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var project = publish[2];
        Assert.True(File.Exists(Repo.PathOf(project)), $"{dockerfile}: {project} does not exist");
        var output = publish[Array.IndexOf(publish, "-o") + 1];
        Assert.Equal("/app", output);

        var temp = Directory.CreateTempSubdirectory("deploy-publish-");
        try
        {
            // The image restores in an earlier step; here publish restores itself, into its own artifacts folder.
            var args = publish.Skip(1).Where(a => a != "--no-restore")
                .Select(a => a == output ? Path.Combine(temp.FullName, "app") : a)
                .Concat(["--artifacts-path", Path.Combine(temp.FullName, "artifacts"), "--nologo"]);
            var result = await Tool.RunAsync(DotnetProcess.Host, args, Repo.Root, TimeSpan.FromMinutes(5));
            Assert.True(result.ExitCode == 0, result.Describe(string.Join(' ', publish)));

            var app = Path.Combine(temp.FullName, "app");
            Assert.True(File.Exists(Path.Combine(app, entrypoint)), $"publish did not produce {entrypoint}");
            var runtimeConfig = JsonDocument.Parse(File.ReadAllText(Path.Combine(app, Path.ChangeExtension(entrypoint, ".runtimeconfig.json"))));
            var frameworks = runtimeConfig.RootElement.GetProperty("runtimeOptions").GetProperty("frameworks").EnumerateArray()
                .Select(f => f.GetProperty("name").GetString()).ToList();
            Assert.Contains("Microsoft.AspNetCore.App", frameworks); // what the aspnet runtime image provides
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    private sealed record Dockerfile(List<string> From, List<(string Instruction, string Args)> FinalStage, List<string> CopySources, List<string> Runs, List<string> Entrypoint)
    {
        public string? Final(string instruction) => FinalStage.LastOrDefault(i => i.Instruction == instruction).Args;

        public static Dockerfile Parse(string relative)
        {
            var from = new List<string>();
            var finalStage = new List<(string, string)>();
            var copies = new List<string>();
            var runs = new List<string>();
            List<string> entrypoint = [];
            foreach (var raw in File.ReadAllLines(Repo.PathOf(relative)))
            {
                var line = raw.Trim();
                if (line.Length == 0 || line.StartsWith('#'))
                {
                    continue;
                }

                Assert.False(line.EndsWith('\\'), $"{relative}: keep instructions on one line so this test reads them");
                var space = line.IndexOf(' ', StringComparison.Ordinal);
                var instruction = line[..space].ToUpperInvariant();
                var args = line[(space + 1)..].Trim();
                switch (instruction)
                {
                    case "FROM":
                        from.Add(args.Split(' ')[0]);
                        finalStage.Clear();
                        break;
                    case "COPY" when !args.StartsWith("--from", StringComparison.Ordinal):
                        var parts = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                        copies.AddRange(parts[..^1]);
                        break;
                    case "RUN":
                        runs.Add(args);
                        break;
                    case "ENTRYPOINT":
                        entrypoint = JsonSerializer.Deserialize<List<string>>(args)!;
                        break;
                }

                finalStage.Add((instruction, args));
            }

            return new Dockerfile(from, finalStage, copies, runs, entrypoint);
        }
    }
}
