"""Temporal's limits that bandmaster checks before sending, so the error names the value."""

MAX_PAYLOAD = 2 * 1024 * 1024
"""Temporal's own limit per payload (a run's input, a signal, a schedule's action)."""
