"""What a worker's claim costs with priorities and tenant fair share, against the claim in
start order it replaced, measured in the same run on copies of the same journal.

    .venv/bin/python benchmarks/bench_claims.py            # 20,000 ready runs
    .venv/bin/python benchmarks/bench_claims.py --quick    # 2,000

Each case fills a journal with ready runs (spread over 1, 10 or 100 tenants, priorities
0..9), then times ``claim_runs(limit=8)`` until 400 claims are made, through the store's own
write path (``BEGIN IMMEDIATE`` ... ``COMMIT``). The baseline is the start-order query of
bandmaster before priorities, run through the same path on an identical copy. Prints
p50/p99 per claim in µs and the ratio; a script, not a test (always exits 0).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from bandmaster.store import SQLiteStore

CLAIMS = 400
LIMIT = 8
OWNER = "bench:1"

# The claim of bandmaster before priorities (start order), for the baseline.
_START_ORDER = (
    "UPDATE runs SET status = 'running', lease_owner = :owner, lease_expires = :expires, "
    "claims = claims + 1, updated_at = :now WHERE id IN (SELECT id FROM runs WHERE status IN "
    "('queued', 'waiting') AND ready_at <= :now AND workflow IN (SELECT value FROM json_each(:names)) "
    "UNION ALL SELECT id FROM runs WHERE status = 'running' AND lease_expires < :now "
    "AND workflow IN (SELECT value FROM json_each(:names)) LIMIT :limit) RETURNING id"
)


def fill(path: Path, runs: int, tenants: int) -> None:
    SQLiteStore(path).close()  # the schema
    rng = random.Random(7)
    now = time.time()
    rows = [
        (f"run-{i:07d}", "wf", "queued", "[]", "json1", now - runs + i, now - runs + i, now - runs + i, 0,
         rng.randrange(10), f"t{rng.randrange(tenants)}" if tenants > 1 else "")
        for i in range(runs)
    ]  # fmt: skip
    conn = sqlite3.connect(path)
    conn.executemany(
        "INSERT INTO runs (id, workflow, status, input, fmt, created_at, updated_at, ready_at, claims, "
        "priority, tenant) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.commit()
    conn.execute("ANALYZE")
    conn.close()


def time_claims(path: Path, *, baseline: bool) -> list[float]:
    store = SQLiteStore(path)
    names = json.dumps(["wf"])
    took = []
    try:
        for _ in range(CLAIMS):
            started = time.perf_counter()
            if baseline:
                now = store.now()
                params = {"owner": OWNER, "expires": now + 60, "now": now, "names": names, "limit": LIMIT}
                got = store._write(lambda conn, p=params: conn.execute(_START_ORDER, p).fetchall())
            else:
                got = store.claim_runs(OWNER, ["wf@"], {"wf": None}, LIMIT, 60)
            took.append(time.perf_counter() - started)
            assert len(got) == LIMIT
    finally:
        store.close()
    return took


def us(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * q // 100)] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4,000 ready runs instead of 20,000")
    args = parser.parse_args()
    runs = 4_000 if args.quick else 20_000  # at least CLAIMS x LIMIT: every claim takes a full batch
    print(f"claim_runs(limit={LIMIT}) x {CLAIMS}, {runs:,} ready runs, priorities 0..9")
    header = ("tenants", 8), ("start order p50", 16), ("p99", 8), ("priority+fair p50", 18), ("p99", 8)
    print(" ".join(f"{text:>{width}}" for text, width in header), f"{'ratio p50':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for tenants in (1, 10, 100):
            source = Path(tmp) / f"t{tenants}.db"
            fill(source, runs, tenants)
            old, new = Path(tmp) / "old.db", Path(tmp) / "new.db"
            shutil.copy(source, old)
            shutil.copy(source, new)
            base = time_claims(old, baseline=True)
            mine = time_claims(new, baseline=False)
            print(
                f"{tenants:>8} {us(base, 50):>13.1f} us {us(base, 99):>8.1f} {us(mine, 50):>15.1f} us "
                f"{us(mine, 99):>8.1f} {statistics.median(mine) / statistics.median(base):>9.2f}x"
            )


if __name__ == "__main__":
    main()
