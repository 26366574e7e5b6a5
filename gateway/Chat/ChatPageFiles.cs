using System.Collections.Frozen;
using Gateway.Utilities;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Net.Http.Headers;

namespace Gateway.Chat;

/// <summary>The page's files (<c>Chat/wwwroot/**</c>), embedded in the assembly so that a build,
/// <c>dotnet publish</c> and the container image all carry them, and read once at start.</summary>
internal sealed class ChatPageFiles
{
    /// <summary>Logical-name prefix of the embedded files (see Gateway.csproj).</summary>
    public const string ResourcePrefix = "Gateway.Chat.wwwroot/";

    private readonly FrozenDictionary<string, ChatFile> _files;

    public ChatPageFiles()
    {
        var assembly = typeof(ChatPageFiles).Assembly;
        var types = new FileExtensionContentTypeProvider();
        var files = new Dictionary<string, ChatFile>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith(ResourcePrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var path = name[ResourcePrefix.Length..].Replace('\\', '/');
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var content = buffer.ToArray();
            var contentType = types.TryGetContentType(path, out var type) ? type : "application/octet-stream";
            var tag = new EntityTagHeaderValue($"\"{Hashes.Sha256Hex(content, 8)}\"");
            files[path] = new ChatFile(content, contentType, tag);
        }

        _files = files.ToFrozenDictionary(StringComparer.Ordinal);
    }

    /// <summary>The file at <paramref name="path"/> (relative to <c>/chat/</c>), or null.</summary>
    public ChatFile? Find(string path) => _files.GetValueOrDefault(path);
}

internal sealed record ChatFile(byte[] Content, string ContentType, EntityTagHeaderValue ETag);
