"""Benchmarks a user can run (`make bench`); each prints ratios against a baseline."""
