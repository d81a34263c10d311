"""``bandmaster tokens``: API tokens of ``bandmaster server`` (create, list, revoke).

The secret is printed once, at creation; the journal keeps only its sha256.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from bandmaster.cli import _console as ui
from bandmaster.errors import BandmasterError
from bandmaster.store import SQLiteStore, TokenStore, resolve_db_path

tokens_app = typer.Typer(help="API tokens for bandmaster server: create, list, revoke.", no_args_is_help=True)

ByOption = Annotated[
    str | None, typer.Option("--by", help="Who makes the change, for the audit [default: $USER]")
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="Journal path [default: $BANDMASTER_DB or ./bandmaster.db]")
]


def _store(db: str | None) -> SQLiteStore:
    try:
        return SQLiteStore(resolve_db_path(db))
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S") if stamp else ""


@tokens_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The principal: audited as who decided or changed what")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="runs:read, runs:write, approvals:decide, models:admin, admin (repeat for several)",
        ),
    ],
    rate: Annotated[
        float | None, typer.Option(help="Requests/s for this token [default: the server's]")
    ] = None,
    db: DbOption = None,
    by: ByOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a token and print its secret (shown only this once)."""
    from bandmaster.server import create_token  # server/ needs no extra for this

    store = _store(db)
    try:
        scopes = [s.strip() for item in scope for s in item.split(",") if s.strip()]
        issued = create_token(store, name, scopes, rate_limit=rate, by=by or getpass.getuser())
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        print(
            json.dumps(
                {"id": issued.id, "name": issued.name, "scopes": issued.scopes, "token": issued.secret}
            )
        )
        return
    ui.line(
        f"token {issued.id} for {issued.name!r} ({', '.join(issued.scopes)}); "
        "store it now, it is not shown again:",
        err=True,
    )
    print(issued.secret)


@tokens_app.command("list")
def list_tokens(db: DbOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Tokens (never their secrets): id, principal, scopes, rate, created, last used, revoked."""
    store = _store(db)
    try:
        rows = TokenStore(store).list_tokens()
    finally:
        store.close()
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "name": r.name,
                        "scopes": r.scopes,
                        "rate_limit": r.rate_limit,
                        "created_at": r.created_at,
                        "last_used_at": r.last_used_at,
                        "revoked_at": r.revoked_at,
                    }
                    for r in rows
                ]
            )
        )
        return
    table = ui.table("id", "name", "scopes", "rate/s", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            r.id,
            r.name,
            ", ".join(r.scopes),
            f"{r.rate_limit:g}" if r.rate_limit else "default",
            _when(r.created_at),
            _when(r.last_used_at),
            _when(r.revoked_at),
        )
    ui.show(table)


@tokens_app.command("revoke")
def revoke(
    token: Annotated[str, typer.Argument(help="Token id, or a name to revoke all its live tokens")],
    db: DbOption = None,
    by: ByOption = None,
) -> None:
    """Revoke a token at once (its browser sessions end too)."""
    from bandmaster.server import revoke_token

    store = _store(db)
    try:
        revoked = revoke_token(store, token, by=by or getpass.getuser())
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc
    finally:
        store.close()
    ui.line(f"revoked {', '.join(revoked)}")
