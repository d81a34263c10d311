"""The journal schema and its migrations, in one place.

``PRAGMA user_version`` holds the schema version; each migration is a list of statements
applied in one transaction. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from bandmaster.store import _budgets as budgets
from bandmaster.store import _claims as claims
from bandmaster.store import _rollups as rollups
from bandmaster.store import _workers as workers

MIGRATIONS: list[list[str]] = [
    # 1: runs, steps, signals
    [
        """
        CREATE TABLE runs (
            id               TEXT PRIMARY KEY,
            workflow         TEXT NOT NULL,
            version          TEXT,
            status           TEXT NOT NULL,   -- queued/running/waiting/completed/failed/cancelled
            input            TEXT,
            output           TEXT,
            error            TEXT,            -- JSON: type, message, traceback
            fmt              TEXT NOT NULL,   -- value encoding of input/output (sqlite.FORMAT)
            created_at       REAL NOT NULL,
            updated_at       REAL NOT NULL,
            ended_at         REAL,
            ready_at         REAL,            -- when a queued/waiting run may be claimed
            lease_owner      TEXT,
            lease_expires    REAL,
            cancel_requested INTEGER NOT NULL DEFAULT 0,
            claims           INTEGER NOT NULL DEFAULT 0  -- times a worker took the run
        )
        """,
        "CREATE INDEX runs_ready ON runs(status, ready_at)",
        "CREATE INDEX runs_lease ON runs(status, lease_expires)",
        "CREATE INDEX runs_workflow ON runs(workflow, created_at)",
        "CREATE INDEX runs_created ON runs(created_at)",
        """
        CREATE TABLE steps (
            run_id     TEXT NOT NULL,
            seq        INTEGER NOT NULL,
            name       TEXT NOT NULL,
            kind       TEXT NOT NULL,     -- step/sleep/wait/now/uuid/random/model
            status     TEXT NOT NULL,     -- waiting/completed/failed
            output     TEXT,
            error      TEXT,
            attempts   INTEGER NOT NULL,
            started_at REAL NOT NULL,
            ended_at   REAL,
            meta       TEXT,              -- JSON: wake_at, signal, model version, cost, ...
            fmt        TEXT NOT NULL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE signals (
            id           INTEGER PRIMARY KEY,
            run_id       TEXT NOT NULL,
            name         TEXT NOT NULL,
            payload      TEXT,
            fmt          TEXT NOT NULL,
            created_at   REAL NOT NULL,
            consumed_seq INTEGER           -- the wait that took it; NULL while pending
        )
        """,
        "CREATE INDEX signals_pending ON signals(run_id, name, id) WHERE consumed_seq IS NULL",
    ],
    # 2: model registry state shared by all workers: alias overrides, breakers, response cache
    [
        "CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """
        CREATE TABLE alias_overrides (
            alias      TEXT PRIMARY KEY,
            spec       TEXT NOT NULL,     -- JSON: versions, weights, policy
            changed_at REAL NOT NULL,
            changed_by TEXT
        )
        """,
        """
        CREATE TABLE alias_history (
            id         INTEGER PRIMARY KEY,
            alias      TEXT NOT NULL,
            spec       TEXT NOT NULL,
            changed_at REAL NOT NULL,
            changed_by TEXT
        )
        """,
        """
        CREATE TABLE breakers (
            key        TEXT PRIMARY KEY,  -- the model name
            status     TEXT NOT NULL,     -- closed/open/half_open
            opened_at  REAL,
            changed_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE cache (
            key        TEXT PRIMARY KEY,  -- alias or model + request fingerprint
            value      TEXT NOT NULL,
            expires_at REAL NOT NULL
        )
        """,
    ],
    # 3: approvals: human decisions on durable waits (bm.approval), and their append-only audit
    [
        """
        CREATE TABLE IF NOT EXISTS approvals (
            run_id         TEXT NOT NULL,
            seq            INTEGER NOT NULL,  -- the journal seq of the approval's opening
            name           TEXT NOT NULL,
            workflow       TEXT NOT NULL,
            payload        TEXT,              -- JSON, encoded like every journal value
            fmt            TEXT NOT NULL,
            approvers      TEXT,              -- JSON list of allowed deciders; NULL: anyone
            default_action TEXT,              -- applied at the deadline when nobody decided
            status         TEXT NOT NULL,     -- pending/decided
            action         TEXT,
            decided_by     TEXT,              -- NULL when the timed default fired
            comment        TEXT,
            decided_at     REAL,
            timed_out      INTEGER NOT NULL DEFAULT 0,
            created_at     REAL NOT NULL,
            deadline       REAL,
            PRIMARY KEY (run_id, seq)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX IF NOT EXISTS approvals_status ON approvals(status, created_at)",
        """
        CREATE TABLE IF NOT EXISTS approval_audit (
            id            INTEGER PRIMARY KEY,
            run_id        TEXT NOT NULL,
            seq           INTEGER NOT NULL,
            name          TEXT NOT NULL,
            at            REAL NOT NULL,
            who           TEXT,              -- NULL for the timed default
            event         TEXT NOT NULL,     -- decided/default/refused/too_late
            action        TEXT,
            comment       TEXT,
            default_fired INTEGER NOT NULL DEFAULT 0,
            detail        TEXT
        )
        """,
        "CREATE INDEX IF NOT EXISTS approval_audit_run ON approval_audit(run_id, seq)",
    ],
    # 4: headers carried on a run for every execution (engine hooks: a W3C trace context)
    [
        """
        CREATE TABLE IF NOT EXISTS run_headers (
            run_id  TEXT PRIMARY KEY,
            headers TEXT NOT NULL         -- JSON object of strings
        ) WITHOUT ROWID
        """,
    ],
    # 5: retention: archive batches in flight (a crash between writing the file and deleting
    # the runs is finished on the next run), and an index to find old finished runs
    [
        """
        CREATE TABLE IF NOT EXISTS archive_batches (
            file       TEXT PRIMARY KEY,  -- where the batch's JSONL.gz goes
            run_ids    TEXT NOT NULL,     -- JSON list, in file order
            created_at REAL NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS runs_ended ON runs(status, ended_at)",
    ],
    # 6: the PII token vault (bandmaster.guard.pii.vault): encrypted originals of reversible
    # tokens, and an audit row for every reveal attempt, allowed or denied
    [
        """
        CREATE TABLE IF NOT EXISTS pii_tokens (
            token      TEXT PRIMARY KEY,  -- <PERSON_1f3a9c2e07bd>
            entity     TEXT NOT NULL,
            ciphertext BLOB NOT NULL,     -- Fernet token of the original text
            created_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE IF NOT EXISTS pii_reveals (
            id       INTEGER PRIMARY KEY,
            reviewer TEXT NOT NULL,
            allowed  INTEGER NOT NULL,
            tokens   INTEGER NOT NULL,    -- how many tokens were revealed
            reason   TEXT,
            at       REAL NOT NULL
        )
        """,
    ],
    # 7: server access control: API tokens (hashed), browser sessions, audit of admin changes
    [
        """
        CREATE TABLE IF NOT EXISTS api_tokens (
            id           TEXT PRIMARY KEY,  -- public part of the token (bm_<id>_<secret>)
            name         TEXT NOT NULL,     -- the principal: audited as who decided/changed
            secret_hash  TEXT NOT NULL,     -- sha256 hex of the secret; the secret is never stored
            scopes       TEXT NOT NULL,     -- JSON list
            rate_limit   REAL,              -- requests/s for this token; NULL: the server default
            created_at   REAL NOT NULL,
            revoked_at   REAL,
            last_used_at REAL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS web_sessions (
            id_hash    TEXT PRIMARY KEY,    -- sha256 hex of the cookie value
            token_id   TEXT NOT NULL,
            csrf       TEXT NOT NULL,       -- synchroniser token of every form of this session
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS server_audit (
            id        INTEGER PRIMARY KEY,
            at        REAL NOT NULL,
            principal TEXT,
            action    TEXT NOT NULL,        -- token.create/token.revoke/models.set/approval.decide/...
            target    TEXT,
            detail    TEXT                  -- JSON
        )
        """,
    ],
    # 8: statistics rollups kept by triggers on steps, backfilled from the journal (rollups.py)
    rollups.MIGRATION,
    # 9: rollups caught up off the write path: drop the run-end and step-update triggers
    rollups.CATCH_UP_MIGRATION,
    # 10: what a keyed start asked for, as a keyed hash (never the raw input, which may be
    # redacted in ``runs``): an Idempotency-Key repeated with the same body finds its run
    [
        """
        CREATE TABLE IF NOT EXISTS run_requests (
            run_id TEXT PRIMARY KEY,
            digest TEXT NOT NULL          -- HMAC-SHA256 (journal secret) of workflow + raw input
        ) WITHOUT ROWID
        """,
    ],
    # 11: schedules (bandmaster.triggers): each tick's run id is derived from the schedule's
    # name and the tick, so workers racing on a tick start one run; last_tick is for catch-up
    [
        """
        CREATE TABLE IF NOT EXISTS schedules (
            name       TEXT PRIMARY KEY,
            workflow   TEXT NOT NULL,
            cron       TEXT NOT NULL,
            catchup    TEXT NOT NULL,     -- skip/all/latest: ticks missed while no worker ran
            input      TEXT,              -- JSON input of every run
            paused     INTEGER NOT NULL DEFAULT 0,
            last_tick  REAL NOT NULL,     -- newest tick started (or when first declared)
            updated_at REAL NOT NULL,
            changed_by TEXT               -- who paused or resumed it last
        ) WITHOUT ROWID
        """,
    ],
    # 12: live token chunks of model streams, for observers (SSE); pruned soon after (streams.py)
    [
        """
        CREATE TABLE IF NOT EXISTS stream_chunks (
            id      INTEGER PRIMARY KEY,    -- arrival order: a reader resumes after the last id
            run_id  TEXT NOT NULL,
            seq     INTEGER NOT NULL,       -- the model call's journal seq
            name    TEXT NOT NULL,          -- and its step name
            text    TEXT NOT NULL,          -- the chunks of one batch, joined ('' first: started)
            restart INTEGER NOT NULL,       -- 1: drop the text so far (a retry or fallback)
            at      REAL NOT NULL
        )
        """,
        "CREATE INDEX IF NOT EXISTS stream_chunks_run ON stream_chunks (run_id, id)",
    ],
    # 13: step-start markers in the same side channel (Engine(live_steps=True), streams.py), and
    # ids never reused (AUTOINCREMENT): a reader resumes after the last id it saw, so a row
    # written after the newest rows were deleted (a resumed stream's) must not get their ids.
    # The table holds only seconds of transient rows: rebuilt empty.
    [
        "DROP TABLE stream_chunks",
        """
        CREATE TABLE stream_chunks (
            id        INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order, never reused
            run_id    TEXT NOT NULL,
            seq       INTEGER NOT NULL,     -- the model call's (or started step's) journal seq
            name      TEXT NOT NULL,        -- and its step name
            text      TEXT NOT NULL,        -- the chunks of one batch, joined ('' first: started)
            restart   INTEGER NOT NULL,     -- 1: drop the text so far (a retry or fallback)
            at        REAL NOT NULL,
            step_kind TEXT                  -- a step-start marker: the step's kind; NULL: a stream
        )
        """,
        "CREATE INDEX stream_chunks_run ON stream_chunks (run_id, id)",
    ],
    # 14: models' rate and concurrency limits, shared by every worker (store/_limits.py):
    # GCRA clocks and the AIMD factor per model, and concurrency slots leased per worker
    [
        """
        CREATE TABLE IF NOT EXISTS limit_rates (
            model      TEXT PRIMARY KEY,
            tat        REAL NOT NULL,     -- next request permit (GCRA), epoch seconds
            tok_tat    REAL NOT NULL,     -- next token permit
            factor     REAL NOT NULL,     -- AIMD rate factor as of factor_at (1: the full limit)
            factor_at  REAL NOT NULL,
            not_before REAL NOT NULL      -- a 429's Retry-After: nobody sends before
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE IF NOT EXISTS limit_slots (
            model   TEXT NOT NULL,
            owner   TEXT NOT NULL,        -- the worker process holding them
            slots   INTEGER NOT NULL,
            expires REAL NOT NULL,        -- renewed while held: a killed worker's come back
            PRIMARY KEY (model, owner)
        ) WITHOUT ROWID
        """,
    ],
    # 15: money spent per budget scope and day, held before a model call and settled after it
    budgets.MIGRATION,
    # 16: a run's terms (engine/_terms.py), and the claim order they give (store/_claims.py):
    # tenant '' is no tenant (so the skip-scan of tenants needs no NULL case). The index
    # orders each tenant's ready runs by "virtual ready time": a priority point is worth
    # AGING seconds of waiting, so the order is exact and needs no per-claim arithmetic.
    [
        "ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN tenant TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE runs ADD COLUMN budget_usd REAL",
        f"CREATE INDEX runs_claim_order ON runs (tenant, {claims.CLAIM_ORDER}) WHERE {claims.PENDING}",
        "CREATE INDEX runs_tenant ON runs (tenant, created_at)",
        "CREATE INDEX runs_running_tenant ON runs (tenant) WHERE status = 'running'",
    ],
    # 17: breakers counted in the journal by every worker (store/_breakers.py): the failures in
    # the window, the count since the last success, and the half-open trial's claim. Each change
    # bumps kv 'breakers_rev', which workers read at each admission to know their view is current.
    [
        "ALTER TABLE breakers ADD COLUMN recent TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE breakers ADD COLUMN failures INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE breakers ADD COLUMN trial_until REAL",
    ],
    # 18: the workflow versions live workers host (store/_workers.py), so runs of a version no
    # worker hosts show as waiting for one
    workers.MIGRATION,
]

SCHEMA_VERSION = len(MIGRATIONS)
