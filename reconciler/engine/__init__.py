"""The engine: plans, their order and rendering, and the workflows over providers. It never
imports a provider: providers are given to it."""
