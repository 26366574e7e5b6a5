# syntax=docker/dockerfile:1
# The gateway image. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t llm-gateway:latest .
# Runs as the image's non-root `app` user (UID 1654) on port 8080 and writes nothing outside /tmp,
# so it runs with a read-only root filesystem (`docker run --read-only --tmpfs /tmp ...`; the
# Kubernetes manifests mount an emptyDir there).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project file alone, so a code change does not re-download packages.
COPY Directory.Build.props ./
COPY gateway/Gateway.csproj gateway/
RUN dotnet restore gateway/Gateway.csproj
COPY gateway/ gateway/
RUN dotnet publish gateway/Gateway.csproj -c Release -o /app --no-restore -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS final
WORKDIR /app
COPY --from=build /app ./
ENV ASPNETCORE_HTTP_PORTS=8080
EXPOSE 8080
USER app
ENTRYPOINT ["dotnet", "Gateway.dll"]
