"""The one rule for a run id chosen by a caller (``run_id=``, ``--run-id``, ``Idempotency-Key``).

Every writer checks it (``bm.Engine.start``, ``bm.TemporalEngine.start``, the server, the CLI),
so every run that exists can be fetched, cancelled and signalled by URL: an id is one path
segment of ``/api/v1/runs/{id}`` and ``/ui/runs/{id}`` *without any escaping*. A ``/`` would
split the segment (servers decode ``%2F`` before routing), ``.``/``..`` are rewritten by
clients, ``?``/``#``/``%``/spaces need escaping that links and shells forget, and a leading
``-`` reads as an option on the command line. Generated ids (uuid4 hex) always pass.
"""

from __future__ import annotations

from bandmaster._types import URL_NAME, URL_NAME_RULE
from bandmaster.errors import InvalidInput


def check_run_id(run_id: str) -> str:
    """``run_id`` when it follows the rule, else ``InvalidInput`` saying what is wrong."""
    if not isinstance(run_id, str) or URL_NAME.fullmatch(run_id) is None:
        shown = repr(run_id) if len(str(run_id)) <= 60 else repr(str(run_id)[:60]) + "..."
        raise InvalidInput(
            f"run id {shown} (run_id=, --run-id or the Idempotency-Key header) cannot be used: a run "
            f"id is {URL_NAME_RULE}, so that it is one URL path segment (e.g. order-1234 or a UUID)"
        )
    return run_id
