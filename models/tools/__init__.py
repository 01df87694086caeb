"""Benchmarks and showcase scripts (python -m models.tools.bench ...)."""
