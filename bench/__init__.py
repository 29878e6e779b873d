"""Benchmarks: each prints figures (ratios measured side by side in one run), no assertions."""
