"""``JournalBreakers``: the breakers of every embedded worker on one journal, counted in it.

Admission checks the journal's breaker revision (published in a memory-mapped file beside the
journal: well under a µs; ``store.BreakerStore``) and uses this worker's view of the rows while
it is current, so a healthy model costs no SQLite read and no write; the view is re-read after
any worker changed a breaker. Each failure, each success
that changes something (after failures) and each half-open trial claim is one short
transaction on the journal (``store.BreakerStore``): the N-th failure counted across the
workers opens the breaker, and every later admission, in any worker, sees it open.
"""

from __future__ import annotations

from bandmaster.calls.wrappers import Clock, Outcome, settle_here
from bandmaster.policies import Admission, Breaker, BreakerState, BreakerStatus
from bandmaster.store import BreakerStore, SQLiteStore

_CLOSED = BreakerState()


class JournalBreakers:
    """``BreakerStates`` shared by every worker on ``store``'s journal."""

    __slots__ = ("rev", "rows", "view")

    def __init__(self, store: SQLiteStore) -> None:
        self.rows = BreakerStore(store)
        self.rev = -1
        self.view: dict[str, BreakerState] = {}

    def current(self, model: str) -> BreakerState:
        """The stored state of ``model`` as of now (re-reading the rows only if any changed)."""
        rows = self.rows
        if rows.published() != self.rev or self.rev < 0:
            rev = rows.revision()
            if rev != self.rev:
                self.view, self.rev = rows.states(), rev
        return self.view.get(model, _CLOSED)

    async def admit(self, model: str, policy: Breaker, clock: Clock) -> tuple[Admission, BreakerState]:
        state, now = self.current(model), clock()
        if state.status == "closed":
            return "go", state
        if state.opened_at is not None and now - state.opened_at < policy.reset:
            return "refused", state
        # A trial may be due: claim it in the journal, where one worker only gets it.
        admission, state = self.rows.change(model, lambda s: s.admit(policy, clock()))
        self.rev = -1  # the rows changed: read them again at the next admission
        return admission, state

    async def settle(
        self, model: str, policy: Breaker, clock: Clock, outcome: Outcome, *, trial: bool
    ) -> BreakerStatus:
        # The common case: a success on a breaker that had no failures when this call was
        # admitted (the view is that recent): nothing to count, nothing to write.
        if outcome == "success" and not trial and not self.view.get(model, _CLOSED).has_news():
            return "closed"
        if outcome == "void" and not trial:
            return self.current(model).status
        # The time is read inside the transaction: an open is stamped when it became visible.
        status, _ = self.rows.change(model, lambda s: settle_here(s, policy, clock(), outcome, trial=trial))
        self.rev = -1
        return status

    def status(self, model: str) -> BreakerStatus:
        return self.current(model).status
