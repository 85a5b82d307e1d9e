"""Benchmarks: complexity (params / MACs / activations / conv count), latency, memory, reports."""
