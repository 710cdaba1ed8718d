"""Shared test helpers (importable as ``support`` from test modules)."""
