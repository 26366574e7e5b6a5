global using MockLlm.Generation;
global using MockLlm.Recording;
