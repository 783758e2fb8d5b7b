"""Orchestration: the spec, its admission, the one run path, and the typed results it produces."""
