using Gateway.Bench;
using Gateway.Bench.Proxies;

if (args.Contains("--plain-yarp"))
{
    await PlainYarpHost.RunAsync(args);
    return 0;
}

if (args.Contains("--debounce"))
{
    return await DebounceBench.RunAsync(args);
}

if (args.Contains("--redis-scale"))
{
    return await RedisScaleBench.RunAsync(args);
}

if (args.Contains("--readme-table"))
{
    return await Gateway.Bench.Report.ReadmeTable.RunAsync(args);
}

if (args.Contains("--help") || args.Contains("-h"))
{
    Console.WriteLine(BenchOptions.Usage);
    Console.WriteLine(Gateway.Bench.Report.ReadmeTable.Usage);
    Console.WriteLine(DebounceBench.Usage);
    Console.WriteLine(RedisScaleBench.Usage);
    return 0;
}

BenchOptions options;
try
{
    options = BenchOptions.Parse(args);
}
catch (ArgumentException ex)
{
    Console.Error.WriteLine(ex.Message);
    Console.Error.WriteLine(BenchOptions.Usage);
    return 2;
}

return await BenchRun.RunAsync(options);
