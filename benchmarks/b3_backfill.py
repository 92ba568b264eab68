"""Benchmark 3, backfill: one UPDATE vs dbdeploy's batched backfill, no concurrent load.

The same change on a copy of the template each: ``category = coalesce(payload ->> 'kind',
'unknown') WHERE category IS NULL`` for every row. Contenders, interleaved per round:

- ``single``: one ``UPDATE`` statement (one transaction), timed from psycopg;
- ``dbdeploy``: a spec with one Backfill (5,000-row batches) applied in-process through
  ``Deployment.apply()`` — the code ``dbdeploy apply`` runs — with a progress callback. dbdeploy
  always copies the values it overwrites to ``dbdeploy_backup`` (its rollback restores them) and
  moves a cursor row per batch; rows/s is the rows changed over the backfill step's duration
  (the executor's StepStarted → StepFinished), and each batch's duration is the time between
  consecutive ``BackfillProgress`` events (one per committed batch);
- ``batched-no-copy``: NOT dbdeploy — a hand-written loop of 5,000-id key-range UPDATEs, one
  transaction each, no rollback copy and no cursor table (dbdeploy has no such mode); shown
  to separate the cost of batching from the cost of the copy.
- ``unprepared``: a diagnostic, NOT what dbdeploy runs — the bundle's own setup and batch
  statement, looped exactly like ``dbdeploy/executor/runner.py`` does (one autocommit
  ``execute`` per batch until a batch sees no rows) but with ``prepare=False``. The executor's
  ``conn.execute(step.batch)`` lets psycopg prepare the statement after 5 executions, after
  which the server reuses one cached plan; this row shows what the same SQL costs when it is
  planned afresh for every batch.
"""

from __future__ import annotations

import time

import psycopg

from benchmarks.b1_stall import FILL, safe_backfill
from benchmarks.common import Context, fmt_ms, median, ratio
from benchmarks.project import BACKFILL_SPEC, BASE_SPEC, Project

CONTENDERS = ("single", "dbdeploy", "batched-no-copy", "unprepared")
LABELS = {"single": "single UPDATE", "dbdeploy": "dbdeploy Backfill (with rollback copy)",
          "batched-no-copy": "hand-written batches, no copy (not dbdeploy)",
          "unprepared": "dbdeploy's batch statement, never prepared (diagnostic, not dbdeploy)"}
SHORT = {"single": "single UPDATE", "dbdeploy": "dbdeploy\n(with copy)", "batched-no-copy": "hand batches,\nno copy",
         "unprepared": "never prepared\n(diagnostic)"}


def server_counters(server) -> tuple[int, int]:
    """(WAL position in bytes, checkpoints so far) of the whole server."""
    with server.connect() as conn:
        wal = conn.execute("SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), '0/0')::bigint"
                           ).fetchone()[0]
        try:
            checkpoints = conn.execute("SELECT num_timed + num_requested FROM pg_catalog.pg_stat_checkpointer"
                                       ).fetchone()[0]
        except psycopg.Error:
            checkpoints = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_catalog.pg_stat_bgwriter"
                                       ).fetchone()[0]
    return int(wal), int(checkpoints)


def run_dbdeploy(project: Project, dsn: str) -> tuple[float, int, list[float]]:
    from dbdeploy.executor.config import load_config
    from dbdeploy.executor.deploy import Deployment
    from dbdeploy.executor.progress import BackfillProgress, StepFinished, StepStarted

    config = load_config(project.root)
    env = config.environment("bench")
    marks: list[float] = []
    state: dict = {}

    def progress(event) -> None:
        now = time.perf_counter()
        if isinstance(event, StepStarted) and event.kind == "backfill":
            state["start"] = now
            marks.append(now)
        elif isinstance(event, BackfillProgress) and "start" in state:
            marks.append(now)
        elif isinstance(event, StepFinished) and "start" in state and "seconds" not in state:
            state["seconds"], state["rows"] = event.seconds, event.rows

    Deployment(config=config, env=env, dsn=dsn, progress=progress).apply()
    batches = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    return state["seconds"], state["rows"], batches


def batch_profile(ctx: Context, template: str, project: Project) -> dict:
    """EXPLAIN ANALYZE of dbdeploy's batch statement (the third batch, warm) on a fresh copy.

    The bundle's setup steps run first exactly as written; then the batch statement between the
    bundle's batch markers is run under EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) in autocommit,
    which executes and commits it like the executor does. Returns the execution time and the
    inclusive time of each CTE (batch: select + FOR UPDATE; saved: the rollback copy; changed:
    the UPDATE; moved: the cursor row).
    """
    from dbdeploy.executor.bundles import load_bundles

    bundle = next(b for b in load_bundles(project.root / "generated") if b.version == "002")
    db = ctx.server.create_db("backfill_profile", template)
    try:
        with psycopg.connect(ctx.server.dsn(db), autocommit=True) as conn:
            statement = None
            for step in bundle.forward.steps:
                if step.batch is not None:
                    statement = step.batch
                    break
                for sql_text in step.statements:
                    conn.execute(sql_text)
            fixed_batch_rows(conn, ctx.settings.batch_size)
            plan = None
            for _ in range(3):   # three batches; the last one is reported
                plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement).fetchone()[0][0]
    finally:
        ctx.server.drop_db(db)
    ctes = {}

    def walk(node: dict) -> None:
        name = node.get("Subplan Name", "")
        if name.startswith("CTE "):
            ctes[name[4:]] = node["Actual Total Time"]
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    return {"execution_ms": plan["Execution Time"], "ctes": ctes}


def fixed_batch_rows(conn: psycopg.Connection, batch_size: int) -> None:
    """Set the row count the batch statement reads (``dbdeploy.batch_rows``, which the executor's
    loop sizes by ``batch_time``) to ``batch_size`` for the session: this benchmark compares
    batches of one fixed size with one UPDATE."""
    from dbdeploy.bundle.markers import BATCH_ROWS_SETTING

    conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", [BATCH_ROWS_SETTING, str(batch_size)])


def run_unprepared(project: Project, dsn: str, batch_size: int, rows: int) -> tuple[float, int, list[float]]:
    from dbdeploy.executor.bundles import load_bundles

    bundle = next(b for b in load_bundles(project.root / "generated") if b.version == "002")
    batches: list[float] = []
    changed = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        step = None
        for step in bundle.forward.steps:
            if step.batch is not None:
                break
            for sql_text in step.statements:
                conn.execute(sql_text)
        fixed_batch_rows(conn, batch_size)
        start = time.perf_counter()
        for _ in range(rows // batch_size + 10):     # bounded: one more than the batches needed
            begin = time.perf_counter()
            seen, batch_changed = conn.execute(step.batch, prepare=False).fetchone()
            if seen == 0:
                break
            batches.append(time.perf_counter() - begin)
            changed += batch_changed
        seconds = time.perf_counter() - start
    return seconds, changed, batches


def one_run(ctx: Context, template: str, project: Project, contender: str, round_no: int) -> dict:
    server = ctx.server
    db = server.create_db(f"backfill_{contender.replace('-', '_')}_{round_no}", template)
    try:
        server.checkpoint()
        dsn = server.dsn(db)
        batches: list[float] = []
        wal_before, checkpoints_before = server_counters(server)
        if contender == "single":
            with psycopg.connect(dsn, autocommit=True) as conn:
                start = time.perf_counter()
                rows = conn.execute(f"UPDATE app.events SET category = {FILL} WHERE category IS NULL").rowcount
                seconds = time.perf_counter() - start
        elif contender == "dbdeploy":
            seconds, rows, batches = run_dbdeploy(project, dsn)
        elif contender == "unprepared":
            seconds, rows, batches = run_unprepared(project, dsn, ctx.settings.batch_size, ctx.settings.rows)
        else:
            with psycopg.connect(dsn, autocommit=True) as conn:
                start = time.perf_counter()
                rows = safe_backfill(conn, ctx.settings.batch_size, batches, column="category")
                seconds = time.perf_counter() - start
        wal_after, checkpoints_after = server_counters(server)
        with psycopg.connect(dsn, autocommit=True) as conn:
            left = conn.execute("SELECT count(*) FROM app.events WHERE category IS NULL").fetchone()[0]
            copied = None
            if contender == "dbdeploy":
                copied = 0
                for (table,) in conn.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables"
                                             " WHERE schemaname = 'dbdeploy_backup'"
                                             " AND tablename NOT LIKE '%progress'").fetchall():
                    copied += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if left or rows != ctx.settings.rows:
            raise RuntimeError(f"benchmark 3 {contender}: {rows} rows changed, {left} left NULL")
    finally:
        server.drop_db(db)
    tenth = max(1, len(batches) // 10)
    return {"contender": contender, "round": round_no, "seconds": seconds, "rows": rows,
            "first_batches": median(batches[:tenth]) if batches else None,    # the first 10% of batches ...
            "last_batches": median(batches[-tenth:]) if batches else None,    # ... and the last 10%
            "rows_per_second": rows / seconds, "batches": len(batches),
            "slowest_batch": max(batches) if batches else None,
            "batches_over_50ms": sum(1 for b in batches if b > 0.05),
            "wal_bytes": wal_after - wal_before, "checkpoints": checkpoints_after - checkpoints_before,
            "median_batch": median(batches) if batches else None, "batch_times": batches,
            "copied_rows": copied}


def run(ctx: Context, template: str) -> dict:
    project = Project.create(ctx.work / "backfill_project", {"V001_base.py": BASE_SPEC,
                                                             "V002_fill.py": BACKFILL_SPEC})
    runs: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
    for round_no in range(1, ctx.settings.rounds + 1):
        for contender in CONTENDERS:
            result = one_run(ctx, template, project, contender, round_no)
            runs[contender].append(result)
            slowest = f", slowest batch {fmt_ms(result['slowest_batch'])}" if result["batches"] else ""
            ctx.log(f"  backfill round {round_no} {contender:16s} {result['rows_per_second']:,.0f} rows/s"
                    f" ({result['seconds']:.2f}s){slowest}")
    summary = {}
    for contender, items in runs.items():
        summary[contender] = {
            "rows_per_second": median([r["rows_per_second"] for r in items]),
            "seconds": median([r["seconds"] for r in items]),
            "slowest_batch": median([r["slowest_batch"] for r in items]) if items[0]["batches"] else None,
            "worst_batch": max(r["slowest_batch"] for r in items) if items[0]["batches"] else None,
            "median_batch": median([r["median_batch"] for r in items]) if items[0]["batches"] else None,
            "batches": median([r["batches"] for r in items]),
            "batches_over_50ms": median([r["batches_over_50ms"] for r in items]),
            "wal_bytes": median([r["wal_bytes"] for r in items]),
            "checkpoints": median([r["checkpoints"] for r in items]),
            "first_batches": median([r["first_batches"] for r in items]) if items[0]["batches"] else None,
            "last_batches": median([r["last_batches"] for r in items]) if items[0]["batches"] else None,
        }
    single = summary["single"]["rows_per_second"]
    for contender in CONTENDERS:
        summary[contender]["ratio_vs_single"] = ratio(summary[contender]["rows_per_second"], single)
    plotted = {c: sorted(items, key=lambda r: r["seconds"])[len(items) // 2] for c, items in runs.items()}
    profile = batch_profile(ctx, template, project)
    ctx.log(f"  backfill: one dbdeploy batch under EXPLAIN ANALYZE: {profile['execution_ms']:.1f} ms; "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in profile["ctes"].items()))
    return {"runs": runs, "summary": summary, "plotted": plotted, "batch_profile": profile}
