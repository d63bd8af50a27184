"""Benchmark suite for the reconciler (see bench/README.md). Not part of the package."""
