"""Benchmarks (``python -m bench``): figures measured side by side in one run, not timed tests."""
