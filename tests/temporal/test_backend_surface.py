"""``bandmaster.temporal`` uses only the engine's public surface: ``bandmaster.engine``,
``bandmaster.engine.backend`` (the interface), ``bandmaster.engine.stats_report`` (what
``stats()`` returns) and ``bandmaster.engine.backend_kit`` (what a backend author may use),
never another engine module nor an underscore name."""

from __future__ import annotations

import ast
from pathlib import Path

import bandmaster.engine.backend_kit as kit

TEMPORAL = Path(kit.__file__).resolve().parents[1] / "temporal"
PUBLIC = {
    "bandmaster.engine",
    "bandmaster.engine.backend",
    "bandmaster.engine.backend_kit",
    "bandmaster.engine.stats_report",
}


def _engine_imports() -> list[tuple[str, str, str]]:
    """(file, module, name) of every import from the engine in bandmaster.temporal."""
    found = []
    for path in sorted(TEMPORAL.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bandmaster.engine"):
                found += [(path.name, node.module or "", alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [
                    (path.name, a.name, "") for a in node.names if a.name.startswith("bandmaster.engine")
                ]
    return found


def test_temporal_imports_only_the_engines_public_surface() -> None:
    imports = _engine_imports()
    assert imports, "expected bandmaster.temporal to use the engine"
    assert [i for i in imports if i[1] not in PUBLIC] == []
    assert [i for i in imports if i[2].startswith("_")] == []


def test_the_backend_kit_exports_are_pinned() -> None:
    assert kit.__all__ == [
        "ANY",
        "MISSING",
        "Approval",
        "ApprovalRequest",
        "AuditEntry",
        "Codec",
        "Decision",
        "HostedWorkflows",
        "Notifier",
        "OpRecord",
        "OperationBackend",
        "Redactor",
        "RunHandle",
        "RunInfo",
        "Step",
        "StepContext",
        "StepInfo",
        "Workflow",
        "check_list_status",
        "check_run_id",
        "codec_for",
        "deliver_notification",
        "describe_key",
        "error_record",
        "rebuild_error",
        "redact_error_record",
        "redact_value",
        "redactor_for",
        "redactor_from_spec",
        "redactor_spec",
        "step_scope",
        "use_backend",
    ]
    assert all(not name.startswith("_") and hasattr(kit, name) for name in kit.__all__)


def test_step_scope_is_what_current_step_answers() -> None:
    import bandmaster as bm

    assert bm.current_step() is None
    with kit.step_scope("run-1", 3, "classify", 2) as scope:
        assert bm.current_step() == scope
        assert (scope.run_id, scope.seq, scope.name, scope.attempt) == ("run-1", 3, "classify", 2)
        assert scope.idempotency_key == "run-1:3"
    assert bm.current_step() is None
