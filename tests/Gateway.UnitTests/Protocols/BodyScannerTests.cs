using System.Text;
using Gateway.Protocols;

namespace Gateway.Tests.Protocols;

/// <summary>The request facts each API's adapter takes from the fields the body scanner finds as the body passes.</summary>
public sealed class BodyScannerTests
{
    private const string OpenAiBody =
        "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"Say \\\"hi\\\"\"}],\"stream\":true,"
        + "\"stream_options\":{\"include_usage\":true},\"max_tokens\":512,\"temperature\":0.2}";

    private const string OllamaBody =
        "{\"model\":\"llama3.2:3b\",\"messages\":[{\"role\":\"user\",\"content\":\"why is the sky blue?\"}],"
        + "\"stream\":false,\"options\":{\"temperature\":0.1,\"stop\":[\"\\n\"],\"num_predict\":128,\"seed\":42}}";

    private static RequestFacts Parse(string json, bool isFinalBlock = true) => Parse(Encoding.UTF8.GetBytes(json), isFinalBlock);

    /// <summary>The facts an OpenAI-compatible request (or an unrecognised one) gets; a cut body is one the scan saw only part of.</summary>
    private static RequestFacts Parse(byte[] json, bool isFinalBlock = true) => Facts(ApiAdapters.Other, [json]);

    private static RequestFacts Facts(ApiAdapter adapter, IEnumerable<byte[]> pieces)
    {
        var scanner = adapter.ScanBody();
        foreach (var piece in pieces)
        {
            scanner.Feed(piece);
        }

        return adapter.FromBody(scanner);
    }

    private static RequestFacts Facts(ApiAdapter adapter, string json) => Facts(adapter, [Encoding.UTF8.GetBytes(json)]);

    [Fact]
    public void OpenAiBody_Parse_ReadsModelStreamAndMaxTokens() =>
        Assert.Equal(new RequestFacts("gpt-4o-mini", true, 512), Parse(OpenAiBody));

    [Fact]
    public void OllamaBody_Parse_ReadsNumPredict() =>
        Assert.Equal(new RequestFacts("llama3.2:3b", false, 128), Parse(OllamaBody));

    [Theory]
    [InlineData("{\"max_completion_tokens\":100,\"max_tokens\":900}", 100L)]
    [InlineData("{\"max_tokens\":900,\"max_completion_tokens\":100}", 100L)]
    [InlineData("{\"max_tokens\":900,\"max_completion_tokens\":0}", 900L)]
    [InlineData("{\"max_tokens\":0}", null)]
    [InlineData("{\"max_tokens\":-1}", null)]
    [InlineData("{\"max_tokens\":null}", null)]
    [InlineData("{\"max_tokens\":\"512\"}", null)]
    [InlineData("{\"max_tokens\":1.5}", null)]
    [InlineData("{\"max_tokens\":99999999999999999999999}", null)]
    [InlineData("{\"options\":{\"num_predict\":-1}}", null)]
    [InlineData("{\"options\":{\"num_predict\":-2}}", null)]
    [InlineData("{\"options\":{\"num_predict\":64}}", 64L)]
    [InlineData("{\"options\":null,\"max_tokens\":7}", 7L)]
    [InlineData("{\"options\":[1,{\"num_predict\":5}],\"max_tokens\":7}", 7L)]
    [InlineData("{\"metadata\":{\"max_tokens\":5}}", null)]
    public void CapFields_Parse_PickTheCap(string json, long? expected) =>
        Assert.Equal(expected, Parse(json).MaxTokens);

    [Theory]
    [InlineData("{\"stream\":true}", true)]
    [InlineData("{\"stream\":false}", false)]
    [InlineData("{\"stream\":\"true\"}", null)]
    [InlineData("{\"stream\":1}", null)]
    [InlineData("{}", null)]
    public void StreamField_Parse_ReadsOnlyBooleans(string json, bool? expected) =>
        Assert.Equal(expected, Parse(json).Stream);

    [Fact]
    public void BodyCutAtEveryByte_Parse_KeepsOnlyWholeFieldsReadBeforeTheCut()
    {
        var bytes = Encoding.UTF8.GetBytes(OpenAiBody);
        var whole = Parse(bytes);
        string? lastModel = null;
        bool? lastStream = null;
        long? lastMax = null;

        for (var cut = 0; cut < bytes.Length; cut++)
        {
            var facts = Parse(bytes[..cut], isFinalBlock: false);

            // A field is either absent or its real value, and once read stays read for longer cuts.
            Assert.True(facts.Model is null || facts.Model == whole.Model, $"cut {cut}: {facts}");
            Assert.True(facts.Stream is null || facts.Stream == whole.Stream, $"cut {cut}: {facts}");
            Assert.True(facts.MaxTokens is null || facts.MaxTokens == whole.MaxTokens, $"cut {cut}: {facts}");
            Assert.False(lastModel is not null && facts.Model is null, $"cut {cut} lost the model");
            Assert.False(lastStream is not null && facts.Stream is null, $"cut {cut} lost stream");
            Assert.False(lastMax is not null && facts.MaxTokens is null, $"cut {cut} lost max_tokens");
            (lastModel, lastStream, lastMax) = (facts.Model, facts.Stream, facts.MaxTokens);
        }

        Assert.Equal(new RequestFacts("gpt-4o-mini", true, 512), whole);
    }

    [Fact]
    public void BodyCutInsideMessages_Parse_KeepsModelReadBeforeIt()
    {
        var cut = OpenAiBody[..OpenAiBody.IndexOf("Say", StringComparison.Ordinal)];

        Assert.Equal(new RequestFacts("gpt-4o-mini", null, null), Parse(cut, isFinalBlock: false));
    }

    [Fact]
    public void BodyCutAfterStream_Parse_KeepsModelAndStream()
    {
        var cut = OpenAiBody[..(OpenAiBody.IndexOf("\"stream\":true,", StringComparison.Ordinal) + 14)];

        Assert.Equal(new RequestFacts("gpt-4o-mini", true, null), Parse(cut, isFinalBlock: false));
    }

    [Theory]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5,,}")]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5 \"stream\":true}")]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5,\"x\":tru}")]
    [InlineData("{\"model\":\"m\",\"max_tokens\":5}}}}")]
    public void MalformedAfterFields_Parse_KeepsFieldsBeforeTheFault(string json)
    {
        var facts = Parse(json);

        Assert.Equal("m", facts.Model);
        Assert.Equal(5, facts.MaxTokens);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[{\"model\":\"m\"}]")]
    [InlineData("\"model\"")]
    [InlineData("{\"model\":")]
    [InlineData("{'model':'m'}")]
    [InlineData("{\"model\":m}")]
    public void MalformedJson_Parse_ReturnsNoModelWithoutThrowing(string json)
    {
        var facts = Parse(json);

        Assert.Null(facts.Model);
    }

    [Fact]
    public void DeepNesting_Parse_DoesNotThrow()
    {
        Assert.Equal(RequestFacts.None, Parse(new string('[', 10_000)));
        Assert.Equal(RequestFacts.None, Parse(new string('{', 10_000)));
        Assert.Equal(new RequestFacts("m", null, null), Parse("{\"model\":\"m\",\"messages\":" + new string('[', 10_000)));
        Assert.Equal(new RequestFacts("m", null, null), Parse("{\"model\":\"m\",\"messages\":" + new string('[', 10_000), isFinalBlock: false));
        Assert.Equal(new RequestFacts("m", null, null), Parse("{\"model\":\"m\",\"options\":" + string.Concat(Enumerable.Repeat("{\"a\":", 10_000))));
    }

    [Fact]
    public void ModelOver256Bytes_Parse_IsIgnored()
    {
        Assert.Equal(new string('m', 256), Parse($"{{\"model\":\"{new string('m', 256)}\"}}").Model);
        Assert.Null(Parse($"{{\"model\":\"{new string('m', 257)}\",\"stream\":true}}").Model);
        Assert.True(Parse($"{{\"model\":\"{new string('m', 257)}\",\"stream\":true}}").Stream);
    }

    /// <summary>The pipe hands the body over in segments; the facts must not depend on where they fall.</summary>
    [Theory]
    [InlineData(OpenAiBody)]
    [InlineData(OllamaBody)]
    public void SegmentedBody_Parse_MatchesContiguous(string json)
    {
        var bytes = Encoding.UTF8.GetBytes(json);
        var contiguous = Parse(bytes);

        foreach (var segmentSize in new[] { 1, 2, 3, 7, 16, 64, 100 })
        {
            Assert.Equal(contiguous, Facts(ApiAdapters.Other, bytes.Chunk(segmentSize)));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(100)]
    [InlineData(4096)]
    public void ModelOver256BytesAcrossSegments_Parse_IsIgnored(int segmentSize)
    {
        var bytes = Encoding.UTF8.GetBytes("{\"model\":\"" + new string('m', 300) + "\",\"stream\":true}");

        var facts = Facts(ApiAdapters.Other, bytes.Chunk(segmentSize));

        Assert.True(facts.Model is null, $"a {facts.Model?.Length}-char model was kept");
        Assert.True(facts.Stream);
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFE })]
    [InlineData(new byte[] { 0xC3 })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    public void InvalidUtf8InModel_Parse_DoesNotThrow(byte[] invalid)
    {
        byte[] json = [.. "{\"model\":\"m"u8, .. invalid, .. "\",\"max_tokens\":5}"u8];

        var facts = Parse(json);

        Assert.Null(facts.Model);
    }

    /// <summary>How the OpenAI and Anthropic Python SDKs write a body: the conversation first, the model and cap after it.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(4096)]
    [InlineData(65536)]
    public void LongConversationBeforeModel_ScannedInPieces_FindsModelAndCap(int pieceSize)
    {
        var content = string.Concat(Enumerable.Repeat(@"a \""quoted\"" line\n with \u00e9scapes, ", 10_000));
        var json = "{\"messages\":[{\"role\":\"user\",\"content\":\"" + content + "\"}],\"model\":\"gpt-4o\",\"stream\":true,\"max_tokens\":300}";
        var bytes = Encoding.UTF8.GetBytes(json);
        Assert.True(bytes.Length > 300_000);
        using (System.Text.Json.JsonDocument.Parse(bytes)) { } // a valid body

        Assert.Equal(new RequestFacts("gpt-4o", true, 300), Facts(ApiAdapters.ChatCompletions, bytes.Chunk(pieceSize)));
        Assert.Equal(new RequestFacts("gpt-4o", true, 300), Facts(ApiAdapters.Messages, bytes.Chunk(pieceSize)));
    }

    [Theory]
    [InlineData("/v1/chat/completions", "{\"model\":\"m\",\"max_tokens\":9,\"max_completion_tokens\":7}", "m", 7L)]
    [InlineData("/v1/completions", "{\"model\":\"m\",\"max_tokens\":9}", "m", 9L)]
    [InlineData("/v1/responses", "{\"model\":\"m\",\"max_tokens\":9,\"max_output_tokens\":11}", "m", 11L)]
    [InlineData("/v1/messages", "{\"max_output_tokens\":9,\"model\":\"m\",\"max_tokens\":12}", "m", 12L)]
    [InlineData("/v1beta/models/gemini-2.0-flash:streamGenerateContent", "{\"contents\":[],\"generationConfig\":{\"temperature\":1,\"maxOutputTokens\":13}}", "gemini-2.0-flash", 13L)]
    [InlineData("/v1/projects/p/locations/l/publishers/google/models/gemini-pro:generateContent", "{\"generation_config\":{\"max_output_tokens\":14}}", "gemini-pro", 14L)]
    [InlineData("/generate_stream", "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":15}}", null, 15L)]
    [InlineData("/completion", "{\"prompt\":\"x\",\"n_predict\":16}", null, 16L)]
    [InlineData("/completion", "{\"prompt\":\"x\",\"n_predict\":-1}", null, null)]
    [InlineData("/api/chat", "{\"model\":\"llama3\",\"options\":{\"num_predict\":17}}", "llama3", 17L)]
    [InlineData("/api/generate", "{\"model\":\"llama3\",\"options\":{\"num_predict\":18}}", "llama3", 18L)]
    public void EachApi_Facts_ComeFromItsOwnFields(string path, string json, string? model, long? cap)
    {
        var adapter = ApiAdapters.For("POST", path);
        var facts = adapter.FromPath(path, new Microsoft.AspNetCore.Http.QueryCollection()).Or(Facts(adapter, json));

        Assert.Equal(model, facts.Model);
        Assert.Equal(cap, facts.MaxTokens);
    }

    [Theory]
    [InlineData("POST", "/v1/chat/completions", "chat_completions")]
    [InlineData("POST", "/openai/deployments/x/chat/completions", "chat_completions")]
    [InlineData("POST", "/v1/completions", "completions")]
    [InlineData("POST", "/v1/responses", "responses")]
    [InlineData("POST", "/v1/messages", "messages")]
    [InlineData("POST", "/v1/messages/count_tokens", "other")]
    [InlineData("POST", "/v1beta/models/g:streamGenerateContent", "gemini")]
    [InlineData("POST", "/v1beta/models/g:countTokens", "other")]
    [InlineData("POST", "/generate_stream", "tgi")]
    [InlineData("POST", "/generate", "tgi")]
    [InlineData("POST", "/completion", "llamacpp")]
    [InlineData("POST", "/api/chat", "ollama")]
    [InlineData("POST", "/api/generate", "ollama")]
    [InlineData("POST", "/v1/embeddings", "other")]
    [InlineData("GET", "/v1/chat/completions", "other")]
    public void RequestPath_For_PicksTheApi(string method, string path, string label) =>
        Assert.Equal(label, ApiAdapters.For(method, path).Label);

    /// <summary>Every split of the body into two writes gives the facts of the whole.</summary>
    [Fact]
    public void EveryTwoPieceSplit_Facts_MatchTheWhole()
    {
        var bytes = Encoding.UTF8.GetBytes(OllamaBody.Replace("\"stream\":false", "\"stream\":false,\"max_tokens\":3,\"k\":\"a\\\"b\\\\\""));
        var whole = Facts(ApiAdapters.OllamaChat, [bytes]);
        Assert.Equal(new RequestFacts("llama3.2:3b", false, 128), whole);

        for (var cut = 0; cut <= bytes.Length; cut++)
        {
            Assert.Equal(whole, Facts(ApiAdapters.OllamaChat, [bytes[..cut], bytes[cut..]]));
        }
    }
}
