"""Checked by ``mypy --strict`` in test_protocol.py: both engines are a ``Backend``."""

from __future__ import annotations

import bandmaster as bm
from bandmaster.engine.backend import Backend
from bandmaster.temporal._engine import TemporalEngine

embedded: Backend = bm.Engine(":memory:")
temporal: Backend = TemporalEngine()
