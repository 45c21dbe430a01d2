"""Weight-free image processing engines (no network inference)."""
