global using Gateway.Testing;
global using Xunit;
