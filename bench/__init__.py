"""Benchmarks with same-run baselines: ``python -m bench.run [--quick]`` (see bench/README.md)."""
