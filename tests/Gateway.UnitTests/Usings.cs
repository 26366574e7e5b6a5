global using Gateway.Testing;
global using Xunit;
global using MockLlm.Generation;
global using MockLlm.Recording;
