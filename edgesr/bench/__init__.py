"""Benchmarks: latency and peak memory of runners on every backend, suites, result tables and plots, and
the before/after report of a pruned model. Model complexity itself is `edgesr.analysis`'s."""
