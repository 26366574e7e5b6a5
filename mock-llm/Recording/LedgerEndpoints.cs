namespace MockLlm.Recording;

internal static class LedgerEndpoints
{
    public static IEndpointRouteBuilder MapLedger(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/ledger", static (Ledger ledger) => TypedResults.Ok(ledger.Snapshot()));
        endpoints.MapDelete("/ledger", static (Ledger ledger) =>
        {
            ledger.Clear();
            return TypedResults.NoContent();
        });
        return endpoints;
    }
}
