"""Metrics, each paired with its direction (higher or lower is better)."""
