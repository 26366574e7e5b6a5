using System.Text;
using System.Text.Json;

namespace MockLlm.Generation;

/// <summary>Typed reads of request-body fields; a field of the wrong type is an <see cref="InvalidRequestException"/>
/// naming it, so every protocol's parser refuses bad bodies the same way.</summary>
internal static class JsonFields
{
    public static void RequireObject(JsonElement element, string name)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidRequestException($"'{name}' must be a JSON object.");
        }
    }

    public static JsonElement RequiredArray(JsonElement root, string name)
    {
        RequireObject(root, "body");
        if (!root.TryGetProperty(name, out var value) || value.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidRequestException($"'{name}' is required and must be an array.");
        }

        return value;
    }

    public static string? OptionalString(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.String ? value.GetString()
        : throw new InvalidRequestException($"'{name}' must be a string.");

    public static bool? OptionalBool(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean()
        : throw new InvalidRequestException($"'{name}' must be a boolean.");

    public static int? OptionalInt(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) ? number
        : throw new InvalidRequestException($"'{name}' must be an integer.");

    public static JsonElement? OptionalObject(JsonElement obj, string name) =>
        !obj.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null ? null
        : value.ValueKind == JsonValueKind.Object ? value
        : throw new InvalidRequestException($"'{name}' must be an object.");

    /// <summary>Appends <paramref name="name"/> when it is a string, or the <c>text</c> of each part
    /// when it is an array of parts (image or tool parts have none); null or absent adds nothing.</summary>
    public static void AppendText(StringBuilder prompt, JsonElement obj, string name)
    {
        if (!obj.TryGetProperty(name, out var content))
        {
            return;
        }

        switch (content.ValueKind)
        {
            case JsonValueKind.Null:
                return;
            case JsonValueKind.String:
                prompt.Append(content.GetString());
                return;
            case JsonValueKind.Array:
                foreach (var part in content.EnumerateArray())
                {
                    RequireObject(part, name + "[]");
                    prompt.Append(OptionalString(part, "text"));
                }

                return;
            default:
                throw new InvalidRequestException($"'{name}' must be a string, an array of content parts or null.");
        }
    }
}
