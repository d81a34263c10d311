"""``bandmaster pii``: see what ``bm.RedactPII`` finds in a text, and reveal vault tokens.

    bandmaster pii scan "Pt Margaret Okafor, MRN 00734519"          # redacted text + spans
    bandmaster pii scan @note.txt --mode mask --entities PERSON,PHONE_NUMBER --json
    BANDMASTER_PII_KEY=... BANDMASTER_PII_REVIEWERS='{"ines": "s3cret"}' \\
        bandmaster pii reveal @redacted.txt --db phi.db --reviewer ines --credential s3cret

Exit codes: 0 success, 2 bad input, a missing extra or a refused reveal.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._files import read_text
from bandmaster.cli._options import DbOption
from bandmaster.errors import BandmasterError

pii_app = typer.Typer(
    help="Find and redact PII/PHI; reveal vault tokens (extra 'pii').", no_args_is_help=True
)


def _text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    if source.startswith("@"):
        return read_text(Path(source[1:]), "text")
    return source


def _fail(message: str) -> typer.Exit:
    return ui.fail(message)


@pii_app.command("scan")
def scan(
    source: Annotated[str, typer.Argument(help="Text, @file, or - for stdin")],
    mode: Annotated[str, typer.Option(help="replace, mask or hash (hash needs --key)")] = "replace",
    entities: Annotated[
        str | None, typer.Option(help="Comma-separated entity types [default: all PHI]")
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="BANDMASTER_PII_HASH_KEY", help="HMAC key for --mode hash")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: redacted text and spans")] = False,
) -> None:
    """Print the text redacted, and each detected span with its type and score."""
    try:
        from bandmaster.guard.pii import RedactPII

        redactor = RedactPII(
            entities.split(",") if entities else None,
            mode=mode,  # type: ignore[arg-type]  # checked by RedactPII
            key=key,
        )
        text = _text(source)
        spans = redactor.analyze(text)
        redacted = redactor.redact_text(text)
    except (BandmasterError, ImportError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        found = [{"entity": s.entity, "start": s.start, "end": s.end, "score": s.score} for s in spans]
        typer.echo(json.dumps({"redacted": redacted, "spans": found}))
        return
    ui.line(redacted)
    table = ui.table("entity", "start", "end", "score")
    for span in spans:
        table.add_row(span.entity, str(span.start), str(span.end), f"{span.score:.2f}")
    ui.show(table, err=True)


@pii_app.command("reveal")
def reveal(
    source: Annotated[str, typer.Argument(help="Text holding vault tokens, @file, or - for stdin")],
    reviewer: Annotated[str, typer.Option(help="Your reviewer name, as on the vault's allow-list")],
    credential: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, envvar="BANDMASTER_PII_CREDENTIAL", help="Your credential"
        ),
    ],
    db: DbOption = None,
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit trail)")] = None,
) -> None:
    """Replace vault tokens by the originals. The vault key comes from $BANDMASTER_PII_KEY and
    the allow-list from $BANDMASTER_PII_REVIEWERS (JSON: {"name": "credential"}); every attempt is
    audited in the journal."""
    key = os.environ.get("BANDMASTER_PII_KEY")
    if not key:
        raise _fail("set BANDMASTER_PII_KEY to the vault key (bm.TokenVault.generate_key())")
    try:
        reviewers = json.loads(os.environ.get("BANDMASTER_PII_REVIEWERS") or "{}")
    except json.JSONDecodeError as exc:
        raise _fail(
            f'BANDMASTER_PII_REVIEWERS is not JSON ({exc.msg}); expected {{"name": "credential"}}'
        ) from exc
    try:
        from bandmaster.guard.pii.vault import TokenVault

        vault = TokenVault(db, key=key, reviewers=reviewers)
        try:
            ui.line(vault.reveal(_text(source), reviewer=reviewer, credential=credential, reason=reason))
        finally:
            vault.close()
    except (BandmasterError, ImportError) as exc:
        raise _fail(str(exc)) from None
