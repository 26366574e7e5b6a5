# syntax=docker/dockerfile:1
# The mock model server image (a demo backend for the `single` overlay; not for production).
# Build from the repository root:
#   docker build -f deploy/docker/mock-llm.Dockerfile -t llm-gateway-mock:latest .
# Non-root (`app`, UID 1654), port 8080, read-only root filesystem friendly like the gateway's image.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY Directory.Build.props ./
COPY mock-llm/MockLlm.csproj mock-llm/
RUN dotnet restore mock-llm/MockLlm.csproj
COPY mock-llm/ mock-llm/
RUN dotnet publish mock-llm/MockLlm.csproj -c Release -o /app --no-restore -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS final
WORKDIR /app
COPY --from=build /app ./
ENV ASPNETCORE_HTTP_PORTS=8080
EXPOSE 8080
USER app
ENTRYPOINT ["dotnet", "MockLlm.dll"]
