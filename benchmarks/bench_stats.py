"""``bandmaster stats`` on a big journal: a generated journal of 1M step rows, timed against
baselines measured in the same run on the same file.

    .venv/bin/python benchmarks/bench_stats.py                  # 1,000,000 steps (about 3 min)
    .venv/bin/python benchmarks/bench_stats.py --quick          # 100,000 steps
    .venv/bin/python benchmarks/bench_stats.py --steps 2000000 --keep /tmp/big.db --json out.json

The generated runs end the way the engine ends them (a status update), which writes nothing to
the stats rollups: the whole journal is a backlog, so the first ``compute`` pays the catch-up
(``store.rollups.catch_up``, timed apart, with its throughput). Then ``compute`` warm, and with a
realistic backlog (the newest ``--backlog-runs`` runs taken out of the rollups: what a reader
finds when workers catch up every 30 s, or none ran for 5 minutes at 10 runs/s). Baselines:
*scan*, one plain ``SELECT`` over every step row (what reading the journal costs at least);
*exact*, ``compute(exact=True)``, which aggregates every row in SQL and whose numbers the
rollups must reproduce (the largest difference is printed); *python*, per-step p99 and
per-model cost the naive way (fetch every row, ``json.loads`` the meta, sort in Python). Then
the write cost: the engine's 10-step chain (and its journal statements alone) on journals
with no rollup triggers at all (twice: the second floor shows the noise), with this version's
schema, with the previous version's run-end trigger, and with this version plus a worker pass
every 0.1 s, interleaved. Last ``archive`` of the oldest tenth of the runs
(it changes the journal). A measurement, not a test: it always exits 0. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bandmaster.observe.stats import Stats, archive, catch_up_before_reading, compute, timeline
from bandmaster.store import SQLiteStore
from bandmaster.store import _rollups as rollups

DAYS = 30
# name, kind, median latency (s), failure rate, retry rate
PIPELINE = [
    ("classify", "model", 0.35, 0.02, 0.05),
    ("scan_phi", "step", 0.04, 0.005, 0.01),
    ("now", "now", 0.0, 0.0, 0.0),
    ("route", "route", 0.0, 0.0, 0.0),
    ("summarise", "model", 1.2, 0.03, 0.08),
    ("reply", "model", 0.9, 0.01, 0.04),
    ("notify", "step", 0.12, 0.01, 0.02),
    ("uuid", "uuid", 0.0, 0.0, 0.0),
]
MODELS = {  # model: (price in, price out per token), share of primary traffic
    "classify": [("intent-small", 0.0, 0.0, 0.9), ("gpt-4o-mini", 0.15e-6, 0.6e-6, 0.1)],
    "summarise": [("claude-3-5-haiku", 0.8e-6, 4e-6, 1.0)],
    "reply": [("gpt-4o", 2.5e-6, 10e-6, 0.95), ("gpt-4o-2024-11", 2.5e-6, 10e-6, 0.05)],
}
FALLBACK = ("llama-3.1-8b-local", 0.0, 0.0)


def generate(path: Path, steps: int, seed: int = 1) -> tuple[int, int]:
    """A journal of about ``steps`` step rows (up to 8 per run, 3 workflows, 30 days),
    bulk-inserted through the store's own schema. Returns (runs, steps)."""
    SQLiteStore(path).close()
    rng = random.Random(seed)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=OFF")  # generation only; the timed reads are unaffected
    runs = steps // len(PIPELINE) + steps // 40  # failed runs stop early: ~8% more runs
    start = time.time() - DAYS * 86400
    prompt = "Customer writes: my card was charged twice for the same order, please help. " * 3
    conn.execute("BEGIN")
    run_rows: list[tuple[Any, ...]] = []
    step_rows: list[tuple[Any, ...]] = []
    written = 0
    for r in range(runs):
        if written >= steps:
            break
        run_id = f"{r:08x}-run"
        created = start + DAYS * 86400 * r / runs
        workflow = ("triage", "contract_review", "fraud_check")[r % 3]
        t = created
        failed = False
        for seq, (name, kind, median, p_fail, p_retry) in enumerate(PIPELINE):
            latency = rng.lognormvariate(math.log(median), 0.6) if median else 0.0
            attempts = 1 + (rng.random() < p_retry) + (rng.random() < p_retry / 4)
            status = "failed" if rng.random() < p_fail else "completed"
            meta = None
            if kind == "model":
                meta = _model_meta(rng, name, prompt)
            step_rows.append(
                (run_id, seq, name, kind, status, '"ok"' if status == "completed" else None,
                 '{"type": "ProviderUnavailable", "message": "503"}' if status == "failed" else None,
                 attempts, t, t + latency, meta, "json1")
            )  # fmt: skip
            t += latency
            written += 1
            if status == "failed":
                failed = True
                break
        status = "failed" if failed else ("completed" if rng.random() < 0.99 else "waiting")
        ended = t if status != "waiting" else None
        run_rows.append(
            (run_id, workflow, status, json.dumps({"text": prompt[:120]}), '"auto_reply"', "json1",
             created, t, ended)
        )  # fmt: skip
        if len(step_rows) >= 50_000:
            _flush(conn, run_rows, step_rows)
    _flush(conn, run_rows, step_rows)
    conn.execute("COMMIT")
    counted = conn.execute("SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM steps)").fetchone()
    conn.close()
    return counted[0], counted[1]


def _model_meta(rng: random.Random, name: str, prompt: str) -> str:
    choices = MODELS[name]
    pick = rng.random()
    model, price_in, price_out, share = choices[0]
    for candidate in choices:
        if pick < candidate[3]:
            model, price_in, price_out, share = candidate
            break
        pick -= candidate[3]
    fallback = None
    if rng.random() < 0.04:
        model, price_in, price_out = FALLBACK
        fallback = model
    cache_hit = rng.random() < 0.1
    tokens_in, tokens_out = rng.randint(200, 1500), rng.randint(5, 400)
    cost = 0.0 if cache_hit else tokens_in * price_in + tokens_out * price_out
    return json.dumps(
        {
            "request": {
                "input": [{"role": "user", "content": prompt}],
                "system": "Be brief.",
                "max_tokens": 400,
            },
            "alias": name,
            "version": "canary" if share < 0.5 else "production",
            "model": model,
            "served_by": model,
            "fallback": fallback,
            "cache_hit": cache_hit,
            "tokens": {"input": tokens_in, "output": tokens_out},
            "cost": cost,
            "confidence": round(rng.random(), 3),
        }
    )


def _flush(
    conn: sqlite3.Connection, run_rows: list[tuple[Any, ...]], step_rows: list[tuple[Any, ...]]
) -> None:
    conn.executemany(
        "INSERT INTO runs (id, workflow, status, input, output, fmt, created_at, updated_at, ended_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(*row[:8], row[8]) for row in run_rows],
    )
    conn.executemany("INSERT INTO steps VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", step_rows)
    run_rows.clear()
    step_rows.clear()


def scan_floor(path: Path) -> float:
    conn = sqlite3.connect(path)
    t0 = time.perf_counter()
    conn.execute("SELECT COUNT(*), TOTAL(ended_at - started_at), TOTAL(length(meta)) FROM steps").fetchone()
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def python_baseline(path: Path) -> tuple[float, dict[str, float]]:
    """The naive way: every row into Python, json.loads, sort."""
    conn = sqlite3.connect(path)
    t0 = time.perf_counter()
    latencies: dict[str, list[float]] = defaultdict(list)
    cost: dict[str, float] = defaultdict(float)
    for name, kind, started, ended, meta in conn.execute(
        "SELECT name, kind, started_at, ended_at, meta FROM steps"
    ):
        if kind in ("now", "uuid", "random", "sleep", "wait"):
            continue
        latencies[name].append(ended - started)
        if meta:
            m = json.loads(meta)
            cost[m.get("model") or name] += m.get("cost") or 0.0
    p99 = {}
    for name, values in latencies.items():
        values.sort()
        p99[name] = values[max(0, math.ceil(0.99 * len(values)) - 1)]
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed, p99


def differences(new: Stats, old: Stats) -> tuple[float, float]:
    """Largest relative difference of the counts and sums, and of the percentiles, between two
    ``Stats`` of the same journal."""
    sums = 0.0
    percentiles = 0.0

    def walk(a: Any, b: Any, field: str) -> None:
        nonlocal sums, percentiles
        if isinstance(a, dict):
            for key in set(a) | set(b):
                walk(a.get(key), b.get(key), key)
        elif isinstance(a, list):
            if len(a) != len(b):
                sums = math.inf
            for x, y in zip(a, b, strict=False):
                walk(x, y, field)
        elif isinstance(a, int | float) and isinstance(b, int | float):
            diff = abs(a - b) / max(abs(b), 1e-12) if a != b else 0.0
            if field in ("p50", "p95", "p99"):
                percentiles = max(percentiles, diff)
            else:
                sums = max(sums, diff)
        elif a != b:
            sums = math.inf

    # since: each call's own clock; file sizes: the journal file, the same code on both paths
    skip = {"seconds", "computed_at", "percentiles_exact", "since", "file_bytes", "free_bytes"}
    walk(new.model_dump(exclude=skip), old.model_dump(exclude=skip), "")
    return sums, percentiles


WRITE_VARIANTS = ("none", "catch-up", "trigger", "catch-up + pass", "none again")


def write_cost(tmp: Path, rounds: int, runs: int) -> dict[str, tuple[float, float]]:
    """Per-step p50 (µs) of the engine benchmark's sequential 10-step chain on four journals,
    and its difference to *none* in the same round, measured in interleaved rounds (medians
    over rounds): *none*, every rollup
    trigger dropped (the floor); *catch-up*, this version's schema (only the triggers the
    normal path never fires: reopen, delete); *trigger*, the previous version (the run-end and
    step-update triggers of ``rollups.MIGRATION`` put back); *catch-up + pass*, this version
    with the worker's rollup pass every 0.1 s instead of every 30 s."""
    import asyncio

    import bench_engine  # the same workload as benchmarks/bench_engine.py, benchmark 1

    import bandmaster as bm

    paths = {variant: tmp / f"write-{i}.db" for i, variant in enumerate(WRITE_VARIANTS)}
    for path in paths.values():
        SQLiteStore(path).close()
    for floor in ("none", "none again"):  # "none again": a second floor, to see the noise
        with sqlite3.connect(paths[floor]) as conn:
            triggers = conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall()
            for (name,) in triggers:
                conn.execute(f"DROP TRIGGER {name}")
    with sqlite3.connect(paths["trigger"]) as conn:
        _previous_triggers(conn)

    async def per_step(path: Path, every: float | None) -> float:
        async with bm.Engine(path, workflows=[bench_engine.chain], rollup_every=every) as engine:
            await bench_engine._sequential_runs(engine, bench_engine.chain, runs // 5)
            samples = await bench_engine._sequential_runs(engine, bench_engine.chain, runs)
        steps = [t / bench_engine.CHAIN_LENGTH for t in samples]
        return bench_engine.percentile(steps, 50)

    results: dict[str, list[float]] = {variant: [] for variant in WRITE_VARIANTS}
    order = list(WRITE_VARIANTS)
    for round_ in range(rounds):
        for variant in order[round_ % len(order) :] + order[: round_ % len(order)]:  # rotate who goes first
            every = 0.1 if variant == "catch-up + pass" else None
            results[variant].append(asyncio.run(per_step(paths[variant], every)))
    # Load from other processes moves whole rounds: compare each variant with "none" of the same round.
    return {
        variant: (
            statistics.median(rs),
            statistics.median(r - none for r, none in zip(rs, results["none"], strict=True)),
        )
        for variant, rs in results.items()
    }


STATEMENT_VARIANTS = ("none", "catch-up", "trigger", "none again")


def statement_cost(tmp: Path, rounds: int, runs: int) -> dict[str, tuple[float, float]]:
    """The engine's journal statements alone, without the engine around them (less noise):
    per run, insert it, claim it, ten step inserts and its end, each in its own commit as a
    sequential chain commits them. µs per step on the *none*, *catch-up* and *trigger*
    journals of :func:`write_cost`, medians over interleaved rounds, and the median of the
    same-round differences to *none*."""
    paths = {variant: tmp / f"statements-{i}.db" for i, variant in enumerate(STATEMENT_VARIANTS)}
    for variant, path in paths.items():
        SQLiteStore(path).close()
        with sqlite3.connect(path) as conn:
            if variant == "none":
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall():
                    conn.execute(f"DROP TRIGGER {name}")
            elif variant == "trigger":
                _previous_triggers(conn)

    def one_round(path: Path, first: int) -> float:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")  # as the store sets it

        def commit(sql: str, params: tuple[Any, ...]) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, params)
            conn.execute("COMMIT")

        started = time.perf_counter()
        for r in range(first, first + runs):
            run_id, now = f"run-{r}", time.time()
            commit(
                "INSERT INTO runs (id, workflow, status, input, fmt, created_at, updated_at) "
                "VALUES (?, 'chain', 'queued', '1', 'json1', ?, ?)",
                (run_id, now, now),
            )
            commit(
                "UPDATE runs SET status = 'running', lease_owner = 'w', lease_expires = ? "
                "WHERE id = ? AND status = 'queued'",
                (now + 10, run_id),
            )
            for seq in range(10):
                commit(
                    "INSERT INTO steps (run_id, seq, name, kind, status, output, error, attempts, "
                    "started_at, ended_at, meta, fmt) SELECT ?,?,?,?,?,?,?,?,?,?,?,? "
                    "WHERE EXISTS (SELECT 1 FROM runs WHERE id = ? AND lease_owner = ?) "
                    "ON CONFLICT(run_id, seq) DO UPDATE SET status = excluded.status "
                    "WHERE steps.status = 'waiting' AND excluded.status != 'waiting'",
                    (
                        run_id,
                        seq,
                        "noop",
                        "step",
                        "completed",
                        "1",
                        None,
                        1,
                        now,
                        now,
                        None,
                        "json1",
                        run_id,
                        "w",
                    ),
                )
            commit(
                "UPDATE runs SET status = 'completed', output = '1', ended_at = ?, updated_at = ?, "
                "lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = 'w'",
                (now, now, run_id),
            )
        elapsed = time.perf_counter() - started
        conn.close()
        return elapsed / (runs * 10) * 1e6

    results: dict[str, list[float]] = {variant: [] for variant in STATEMENT_VARIANTS}
    order = list(STATEMENT_VARIANTS)
    for round_ in range(rounds):
        for variant in order[round_ % len(order) :] + order[: round_ % len(order)]:
            results[variant].append(one_round(paths[variant], round_ * runs))
    return {
        variant: (
            statistics.median(rs),
            statistics.median(r - none for r, none in zip(rs, results["none"], strict=True)),
        )
        for variant, rs in results.items()
    }


def _previous_triggers(conn: sqlite3.Connection) -> None:
    """Put back the triggers of the previous version (``rollups.MIGRATION``, as it left them)."""
    conn.execute("DROP TRIGGER runs_rollup_reopen")  # this version's, with the cheaper WHEN
    for statement in rollups.MIGRATION:
        if statement.startswith("CREATE TRIGGER"):
            conn.execute(statement)


def _key(variant: str) -> str:
    return variant.replace(" + ", "_").replace("-", "_")


def unroll_newest(path: Path, runs: int) -> int:
    """Take the newest ``runs`` ended runs out of the rollups (as archive does before deleting
    them): the backlog a reader finds when they ended since the last catch-up."""
    conn = sqlite3.connect(path, isolation_level=None)
    ids = [
        row[0]
        for row in conn.execute(
            "SELECT id FROM runs WHERE rolled_up = 1 ORDER BY ended_at DESC LIMIT ?", (runs,)
        )
    ]
    conn.execute("BEGIN IMMEDIATE")
    for statement in rollups.remove_runs_sql("SELECT value FROM json_each(?)"):
        conn.execute(statement, (json.dumps(ids),))
    conn.execute("COMMIT")
    conn.close()
    return len(ids)


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 steps")
    parser.add_argument("--keep", type=Path, help="write the journal here and keep it (reused if present)")
    parser.add_argument("--backlog-runs", type=int, default=3000, help="newest runs left to catch up")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args()
    steps = 100_000 if args.quick else args.steps

    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "stats.db"
        t_gen = 0.0
        if not path.exists():
            t_gen, (runs, rows) = timed(generate, path, steps)
        else:  # a kept journal: make the whole of it a backlog again
            SQLiteStore(path).close()
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("BEGIN")
            conn.execute("UPDATE runs SET rolled_up = NULL")
            conn.execute("DELETE FROM step_rollup")
            conn.execute("DELETE FROM model_rollup")
            conn.execute("COMMIT")
            runs, rows = conn.execute(
                "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM steps)"
            ).fetchone()
            conn.close()
        size = path.stat().st_size
        print(f"journal: {runs:,} runs, {rows:,} step rows, {size / 1e6:.0f} MB (generated in {t_gen:.1f} s)")

        floor = statistics.median(scan_floor(path) for _ in range(3))
        # cold: the first read catches the whole journal up, then reads (what compute does)
        t_catch, caught = timed(catch_up_before_reading, path)
        t_first, _ = timed(compute, path)
        with sqlite3.connect(path) as conn:
            caught_steps = conn.execute("SELECT SUM(n) FROM step_rollup").fetchone()[0]
        t_cold = t_catch + t_first
        t_all, stats = min((timed(compute, path) for _ in range(2)), key=lambda r: r[0])
        t_wf, _ = timed(compute, path, workflow="triage")
        week_ago = time.time() - 7 * 86400  # one cutoff for the rollups and the exact path

        def since_7d() -> float:
            return time.time() - week_ago

        t_since, recent = timed(compute, path, since=since_7d())
        backlog_runs = unroll_newest(path, args.backlog_runs)
        t_backlog, _ = timed(compute, path)
        t_exact, exact = timed(compute, path, exact=True)
        t_exact_since, exact_recent = timed(compute, path, since=since_7d(), exact=True)
        t_plot, buckets = timed(timeline, path)
        t_py, py_p99 = python_baseline(path)
        # many short interleaved rounds: the load of other processes moves in seconds
        write = write_cost(Path(tmp), rounds=8 if args.quick else 30, runs=80)
        statements = statement_cost(Path(tmp), rounds=15 if args.quick else 60, runs=100)
        # retention last (it changes the journal): the oldest tenth, 3 of the 30 days
        t_arch, archived = timed(archive, path, f"{DAYS - 3}d", Path(tmp) / "archive")
        after, exact_after = compute(path), compute(path, exact=True)

        sums_diff, pct_diff = differences(stats, exact)
        since_sums, since_pct = differences(recent, exact_recent)
        arch_sums, arch_pct = differences(after, exact_after)
        sql_p99 = {s.name: s.p99 for s in stats.step_stats}
        py_err = max(abs((sql_p99[name] or 0) - value) / value for name, value in py_p99.items() if value)
        numbers = {
            "runs": runs,
            "steps": rows,
            "journal_mb": size / 1e6,
            "scan_floor_s": floor,
            "catch_up_runs": caught,
            "catch_up_steps": caught_steps,
            "catch_up_s": t_catch,
            "catch_up_runs_per_s": (caught or 0) / t_catch,
            "catch_up_steps_per_s": caught_steps / t_catch,
            "stats_cold_s": t_cold,
            "stats_all_s": t_all,
            "stats_workflow_s": t_wf,
            "stats_since_7d_s": t_since,
            "backlog_runs": backlog_runs,
            "stats_backlog_s": t_backlog,
            "exact_all_s": t_exact,
            "exact_since_7d_s": t_exact_since,
            "timeline_s": t_plot,
            "python_naive_s": t_py,
            "archive_runs": archived.runs,
            "archive_s": t_arch,
            "ratio_vs_scan": t_all / floor,
            "speedup_vs_exact": t_exact / t_all,
            "speedup_vs_python": t_py / t_all,
            "max_rel_diff_sums": max(sums_diff, since_sums, arch_sums),
            "max_rel_diff_percentiles": max(pct_diff, since_pct, arch_pct),
            "p99_rel_err_vs_python": py_err,
            **{f"chain_step_p50_{_key(v)}_us": write[v][0] for v in write},
            **{f"chain_step_vs_none_{_key(v)}_us": write[v][1] for v in write},
            **{f"statements_step_{_key(v)}_us": statements[v][0] for v in statements},
            **{f"statements_step_vs_none_{_key(v)}_us": statements[v][1] for v in statements},
        }
        rows_out = [
            ("full scan of steps (floor)", f"{floor:.2f} s", "1.0x"),
            (
                f"catch-up of the whole journal ({caught or 0:,} runs, {caught_steps:,} steps)",
                f"{t_catch:.2f} s",
                f"{(caught or 0) / t_catch:,.0f} runs/s, {caught_steps / t_catch:,.0f} steps/s",
            ),
            ("stats, cold: first read pays that catch-up", f"{t_cold:.2f} s", f"{t_cold / floor:.1f}x floor"),
            ("stats, whole journal, caught up (warm)", f"{t_all:.2f} s", f"{t_all / floor:.2f}x floor"),
            (
                f"stats, whole journal, {backlog_runs:,} newest runs to catch up",
                f"{t_backlog:.2f} s",
                f"{t_backlog / t_all:.2f}x warm",
            ),
            ("stats --workflow triage", f"{t_wf:.2f} s", f"{t_wf / floor:.2f}x floor"),
            (f"stats --since 7d ({recent.runs:,} runs)", f"{t_since:.2f} s", f"{t_since / floor:.2f}x floor"),
            ("stats --exact, whole journal (every row)", f"{t_exact:.2f} s", f"{t_exact / t_all:.1f}x stats"),
            ("stats --exact --since 7d", f"{t_exact_since:.2f} s", f"{t_exact_since / t_since:.1f}x stats"),
            (f"--plot timeline ({len(buckets)} slices)", f"{t_plot:.2f} s", f"{t_plot / floor:.1f}x floor"),
            (
                "naive Python, p99 + cost only (rows, json.loads, sort)",
                f"{t_py:.2f} s",
                f"{t_py / t_all:.1f}x stats",
            ),
            *(
                (
                    f"engine chain, per step p50: {variant}",
                    f"{write[variant][0]:.1f} us",
                    f"{write[variant][1]:+.1f} us vs none (median of same-round differences)",
                )
                for variant in WRITE_VARIANTS
            ),
            *(
                (
                    f"journal statements alone, per step: {variant}",
                    f"{statements[variant][0]:.1f} us",
                    f"{statements[variant][1]:+.2f} us vs none (median of same-round differences)",
                )
                for variant in STATEMENT_VARIANTS
            ),
            (
                f"archive oldest 3 days ({archived.runs:,} runs, {len(archived.files)} files)",
                f"{t_arch:.2f} s",
                f"{archived.runs / t_arch:,.0f} runs/s" if t_arch else "",
            ),
        ]
        width = max(len(r[0]) for r in rows_out)
        for label, value, ratio in rows_out:
            print(f"  {label:<{width}}  {value:>8}  {ratio}")
        print(
            "  rollups vs exact: largest relative difference of counts and sums (whole, --since 7d, "
            f"after archive) {sums_diff:.1e}, {since_sums:.1e}, {arch_sums:.1e}; of p50/p95/p99 "
            f"{numbers['max_rel_diff_percentiles']:.2%}; p99 vs naive Python {py_err:.2%}"
        )
        top = sorted(stats.models, key=lambda m: -m.cost)[:3]
        print("  top models by cost: " + ", ".join(f"{m.model} ${m.cost:,.2f}" for m in top))
        if args.json:
            args.json.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
