"""Benchmarks the field reports, read from their official downloads and scored as their official
scripts score them (see :mod:`vlir.eval.benchmarks.base` for the contract)."""
