"""Benchmarks: each prints JSON and compares against the naive way in the same run."""
