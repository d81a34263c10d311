"""The workflows an engine hosts, by name and version: several versions of one workflow side by
side, and which one new runs get.

A run stays on the version it started on (its journal row keeps it), so a worker claims only
the runs whose *key* it hosts: ``name@version``, or ``name@`` for a workflow without a version.
A run started by name from a process that hosts no version of it is *unpinned* (no version,
never claimed): it has no history yet, so the first worker that claims it runs it on that
worker's default version and pins it there (``store.SQLiteStore.claim_runs``), or on the
workflow without a version where that worker hosts one.

The default of a name is the version ``default_versions`` pins, else the newest, by natural
order (``"10"`` is newer than ``"9"``, ``"2.1"`` than ``"2"``); a workflow without a version is
older than any version of the same name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from bandmaster.engine._workflow import Workflow
from bandmaster.errors import UsageError

_CHUNKS = re.compile(r"(\d+)")


def run_key(workflow: str, version: str | None) -> str:
    """The key a run is claimed by (the same text as ``store``'s claim query builds)."""
    return f"{workflow}@{version or ''}"


def describe_key(workflow: str, version: str | None) -> str:
    """``triage@2``, or ``triage`` for a workflow without a version (for people)."""
    return f"{workflow}@{version}" if version else workflow


def version_order(version: str | None) -> tuple[Any, ...]:
    """A sort key: no version first, then natural order (digits compare as numbers)."""
    if version is None:
        return ()
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in _CHUNKS.split(version) if part
    )


class HostedWorkflows:
    """Workflows by name and version, with each name's default (the one new runs get)."""

    def __init__(
        self,
        workflows: Iterable[Workflow[..., Any]] = (),
        *,
        default_versions: Mapping[str, str] | None = None,
    ) -> None:
        self._by_key: dict[tuple[str, str | None], Workflow[..., Any]] = {}
        self._pinned = dict(default_versions or {})
        self.defaults: dict[str, Workflow[..., Any]] = {}
        """Each name's default version: what starting by name runs."""
        # What every claim poll asks for, rebuilt when a workflow is added, not on each poll.
        self._keys: tuple[str, ...] = ()
        self._pins: Mapping[str, str | None] = MappingProxyType({})
        for wf in workflows:
            self.add(wf)

    def add(self, wf: Workflow[..., Any]) -> None:
        """Host ``wf``; the same name and version twice is refused unless it is the same object."""
        if not isinstance(wf, Workflow):
            raise UsageError(f"{wf!r} is not a workflow; decorate it with @bm.workflow")
        key = (wf.name, wf.version)
        other = self._by_key.get(key)
        if other is wf:
            return
        if other is not None:
            what = f"version {wf.version!r}" if wf.version else "no version"
            raise UsageError(
                f"two workflows are named {wf.name!r} with {what}; give one @bm.workflow(name=...) "
                "or a new version=..."
            )
        for (name, _), sibling in self._by_key.items():
            if name == wf.name and (sibling.redact is None) != (wf.redact is None):
                raise UsageError(
                    f"versions of workflow {wf.name!r} disagree on redact=: every version of a "
                    "workflow must redact its runs alike, since one journal record says how they redact"
                )
        self._by_key[key] = wf
        self.defaults[wf.name] = self._default_of(wf.name)
        self._keys = tuple(run_key(name, version) for name, version in self._by_key)
        self._pins = MappingProxyType(
            {name: None if (name, None) in self._by_key else d.version for name, d in self.defaults.items()}
        )

    def check_pins(self) -> None:
        """Every pinned default is a hosted version (checked once all are added)."""
        for name, version in self._pinned.items():
            if (name, version) not in self._by_key:
                hosted = sorted(v or "(none)" for n, v in self._by_key if n == name)
                raise UsageError(
                    f"default_versions pins {name!r} to version {version!r}, which this engine does not "
                    f"host (hosted: {', '.join(hosted) or 'none'}); add that version to workflows=[...]"
                )

    def get(self, name: str, version: str | None) -> Workflow[..., Any] | None:
        return self._by_key.get((name, version))

    def versions(self, name: str) -> list[str | None]:
        """The hosted versions of ``name``, oldest first."""
        return sorted((v for n, v in self._by_key if n == name), key=version_order)

    def keys(self) -> tuple[str, ...]:
        """The run keys hosted (``run_key``)."""
        return self._keys

    def pins(self) -> Mapping[str, str | None]:
        """What an unpinned run of each name is pinned to when claimed here: the default
        version, or none where the workflow without a version is hosted (as on Temporal, where
        such a run starts on the queue of the unversioned workflow, ``temporal/_versions.py``)."""
        return self._pins

    def __iter__(self) -> Iterator[Workflow[..., Any]]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def _default_of(self, name: str) -> Workflow[..., Any]:
        pinned = self._pinned.get(name)
        if pinned is not None and (name, pinned) in self._by_key:
            return self._by_key[(name, pinned)]
        newest = max(self.versions(name), key=version_order)
        return self._by_key[(name, newest)]
