"""Observability: tracing, metrics and statistics from the journal."""
