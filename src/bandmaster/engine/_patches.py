"""``bm.patched`` and ``bm.deprecate_patch``: change workflow code under runs in flight.

    if bm.patched("refund-check"):
        await refund_check(order)      # new runs, and runs past this point, take the new code
    await ship(order)                  # runs started before the change resume as they were

A run that recorded its way past the patch point without the patch keeps the old branch when
it resumes; every other run takes the new one, and its choice is journaled as a marker so a
resume takes it again. When no run from before the change is left, keep only the new branch
and call ``bm.deprecate_patch("refund-check")`` in its place; later remove that too. On the
Temporal backend these are ``workflow.patched`` and ``workflow.deprecate_patch``.
"""

from __future__ import annotations

from bandmaster.engine._context import current_step_var, journaling
from bandmaster.engine.backend import current_backend
from bandmaster.errors import UsageError

MAX_PATCH_ID = 200


def patched(patch_id: str) -> bool:
    """True where this run takes the new code of patch ``patch_id`` (see the module doc)."""
    _check(patch_id, "patched")
    backend = current_backend.get()
    if backend is not None:
        return backend.patched(patch_id)
    ctx = journaling()
    if ctx is None:
        return True  # outside a run there is only the new code
    return ctx.decide_patch(patch_id)


def deprecate_patch(patch_id: str) -> None:
    """Mark where patch ``patch_id`` was, once every run from before it has finished: runs
    that recorded its marker still resume, and new runs record nothing."""
    _check(patch_id, "deprecate_patch")
    backend = current_backend.get()
    if backend is not None:
        backend.deprecate_patch(patch_id)
    # Embedded markers never shift the numbering of operations: nothing to reconcile.


def _check(patch_id: str, what: str) -> None:
    if not isinstance(patch_id, str) or not patch_id.strip() or len(patch_id) > MAX_PATCH_ID:
        raise UsageError(
            f"bm.{what}() needs a patch id: a non-empty string of at most {MAX_PATCH_ID} characters "
            f"that names the change, e.g. 'refund-check'; got {patch_id!r}"
        )
    if current_step_var.get() is not None:
        raise UsageError(
            f"bm.{what}({patch_id!r}) cannot be called inside a step: steps are not replayed, so "
            "branch in the workflow, around the steps"
        )
