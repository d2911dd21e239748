"""Engines behind small interfaces: each has real backends and deterministic fakes."""
