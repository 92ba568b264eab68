"""Benchmark 1, online stall: the same change three ways while a writer updates single rows.

Contenders (each on its own copy of the template, interleaved per round):

- ``naive``: what a hurried hand would type, each statement in its own transaction: ADD COLUMN,
  one UPDATE for the whole table, CREATE INDEX, ADD FOREIGN KEY, ADD CHECK, SET NOT NULL,
  ADD UNIQUE.
- ``safe``: the best hand-written script: ADD COLUMN, 5,000-row key-range UPDATE batches (one
  transaction each, no copy), NOT NULL through a NOT VALID check that is then validated,
  CREATE INDEX CONCURRENTLY, FK and CHECK as NOT VALID then VALIDATE, CREATE UNIQUE INDEX
  CONCURRENTLY then ADD CONSTRAINT … UNIQUE USING INDEX; ``lock_timeout`` 5s.
- ``dbdeploy``: ``dbdeploy apply --env bench --plain`` (whole process) of a spec with AddColumn
  NOT NULL, Backfill (5,000-row batches), CreateIndex, AddForeignKey, AddCheck, AddUnique.

All three end in the same schema (checked after every run). The naive and safe scripts run on
one psycopg connection from the benchmark process; dbdeploy's step boundaries come from its
``migrations.performance_log``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from benchmarks.common import SLOW_MS, Context, fmt_ms, fmt_s, median, percentile, ratio
from benchmarks.project import BASE_SPEC, STALL_SPEC, Project
from benchmarks.writer import Samples, Writer

CONTENDERS = ("naive", "safe", "dbdeploy")
LABELS = {"naive": "naive SQL", "safe": "hand-written safe script", "dbdeploy": "dbdeploy apply"}
FILL = "coalesce(payload ->> 'kind', 'unknown')"

NAIVE = [
    ("add column", "ALTER TABLE app.events ADD COLUMN event_type text"),
    ("UPDATE all rows", f"UPDATE app.events SET event_type = {FILL} WHERE event_type IS NULL"),
    ("create index", "CREATE INDEX idx_events_type_time ON app.events (event_type, created_at)"),
    ("add FK", "ALTER TABLE app.events ADD CONSTRAINT fk_events_source FOREIGN KEY (source_id)"
               " REFERENCES app.sources (id)"),
    ("add check", "ALTER TABLE app.events ADD CONSTRAINT chk_events_type CHECK (event_type <> '')"),
    ("set not null", "ALTER TABLE app.events ALTER COLUMN event_type SET NOT NULL"),
    ("add unique", "ALTER TABLE app.events ADD CONSTRAINT uq_events_external_id UNIQUE (external_id)"),
]

SAFE_AFTER_BACKFILL = [
    ("not null", [
        "ALTER TABLE app.events ADD CONSTRAINT events_event_type_not_null CHECK (event_type IS NOT NULL) NOT VALID",
        "ALTER TABLE app.events VALIDATE CONSTRAINT events_event_type_not_null",
        "ALTER TABLE app.events ALTER COLUMN event_type SET NOT NULL",
        "ALTER TABLE app.events DROP CONSTRAINT events_event_type_not_null"]),
    ("index concurrently", ["CREATE INDEX CONCURRENTLY idx_events_type_time ON app.events (event_type, created_at)"]),
    ("FK not valid + validate", [
        "ALTER TABLE app.events ADD CONSTRAINT fk_events_source FOREIGN KEY (source_id)"
        " REFERENCES app.sources (id) NOT VALID",
        "ALTER TABLE app.events VALIDATE CONSTRAINT fk_events_source"]),
    ("check not valid + validate", [
        "ALTER TABLE app.events ADD CONSTRAINT chk_events_type CHECK (event_type <> '') NOT VALID",
        "ALTER TABLE app.events VALIDATE CONSTRAINT chk_events_type"]),
    ("unique index concurrently + attach", [
        "CREATE UNIQUE INDEX CONCURRENTLY uq_events_external_id ON app.events (external_id)",
        "ALTER TABLE app.events ADD CONSTRAINT uq_events_external_id UNIQUE USING INDEX uq_events_external_id"]),
]


def _timed_steps(conn: psycopg.Connection, steps: list[tuple[str, Callable[[], None]]]) -> list[dict]:
    marks = []
    for label, action in steps:
        start = time.time()
        action()
        marks.append({"label": label, "start": start, "end": time.time()})
    return marks


def run_naive(dsn: str, batch_size: int) -> list[dict]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return _timed_steps(conn, [(label, lambda s=stmt: conn.execute(s)) for label, stmt in NAIVE])


def safe_backfill(conn: psycopg.Connection, batch_size: int, batch_times: list[float] | None = None,
                  column: str = "event_type") -> int:
    """Key-range batches of ``batch_size`` ids, one autocommit UPDATE each; no copy, no cursor table."""
    low, high = conn.execute("SELECT min(id), max(id) FROM app.events").fetchone()
    changed = 0
    if low is None:
        return 0
    for start in range(low, high + 1, batch_size):   # bounded: (high - low) / batch_size + 1 batches
        begin = time.perf_counter()
        cur = conn.execute(f"UPDATE app.events SET {column} = {FILL}"
                           f" WHERE id >= %s AND id < %s AND {column} IS NULL", [start, start + batch_size])
        changed += max(cur.rowcount, 0)
        if batch_times is not None:
            batch_times.append(time.perf_counter() - begin)
    return changed


def run_safe(dsn: str, batch_size: int) -> list[dict]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        steps: list[tuple[str, Callable[[], None]]] = [
            ("add column", lambda: conn.execute("ALTER TABLE app.events ADD COLUMN event_type text")),
            (f"backfill ({batch_size:,}-row batches)", lambda: safe_backfill(conn, batch_size)),
        ]
        for label, statements in SAFE_AFTER_BACKFILL:
            steps.append((label, lambda ss=statements: [conn.execute(s) for s in ss]))
        return _timed_steps(conn, steps)


def run_dbdeploy(project: Project, dsn: str) -> list[dict]:
    project.apply(dsn, timeout=3600).check("dbdeploy apply (benchmark 1)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT step, kind, extract(epoch FROM started_at)::float8, extract(epoch FROM ended_at)::float8"
            " FROM migrations.performance_log WHERE version = '002' AND direction = 'forward'"
            " ORDER BY started_at, step").fetchall()
    return [{"label": f"{step} {kind}", "start": start, "end": end} for step, kind, start, end in rows]


def verify_end_state(dsn: str) -> None:
    """All three contenders must leave the same schema behind."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        notnull = conn.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'app.events'::regclass"
                               " AND attname = 'event_type'").fetchone()
        constraints = dict(conn.execute(
            "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'app.events'::regclass").fetchall())
        index_ok = conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid ="
                                " to_regclass('app.idx_events_type_time')").fetchone()
        nulls = conn.execute("SELECT count(*) FROM app.events WHERE event_type IS NULL").fetchone()[0]
    problems = []
    if not (notnull and notnull[0]):
        problems.append("event_type is not NOT NULL")
    for name in ("fk_events_source", "chk_events_type", "uq_events_external_id"):
        if not constraints.get(name):
            problems.append(f"{name} missing or not validated")
    if "events_event_type_not_null" in constraints:
        problems.append("helper check left behind")
    if not (index_ok and index_ok[0]):
        problems.append("idx_events_type_time missing or invalid")
    if nulls:
        problems.append(f"{nulls} rows not backfilled")
    if problems:
        raise RuntimeError("benchmark 1 end state differs: " + "; ".join(problems))


def writer_metrics(samples: Samples, begin: float, end: float, stall_ms: float) -> dict:
    before = [lat for start, lat in zip(samples.starts, samples.latencies, strict=True) if start < begin]
    window = samples.window(begin, end)
    latencies = [lat for _, lat in window]
    span = max(end - begin, 1e-9)
    stalls = [lat for lat in latencies if lat * 1000 > stall_ms]
    return {
        "statements": len(latencies),
        "throughput": len(latencies) / span,
        "max_latency": max(latencies) if latencies else float("nan"),
        "p99_latency": percentile(latencies, 0.99),
        "p50_latency": percentile(latencies, 0.50),
        "slow_seconds": sum(lat for lat in latencies if lat * 1000 > SLOW_MS),
        "stall_seconds": sum(stalls),
        "stall_count": len(stalls),
        "writer_errors": samples.error_count,
        "baseline_p50": percentile(before, 0.50),     # the writer alone, before the change started
    }


def one_run(ctx: Context, template: str, project: Project, contender: str, round_no: int) -> dict:
    server, settings = ctx.server, ctx.settings
    db = server.create_db(f"stall_{contender}_{round_no}", template)
    try:
        server.checkpoint()
        dsn = server.dsn(db)
        max_seconds = 120 + settings.rows / 5_000
        with Writer(dsn, settings.rows, ctx.work / f"writer_stall_{contender}_{round_no}.json",
                    settings.writer_rate, max_seconds) as writer:
            time.sleep(settings.warmup)
            begin = time.time()
            if contender == "naive":
                steps = run_naive(dsn, settings.batch_size)
            elif contender == "safe":
                steps = run_safe(dsn, settings.batch_size)
            else:
                steps = run_dbdeploy(project, dsn)
            end = time.time()
            time.sleep(settings.tail)
            samples = writer.stop()
        verify_end_state(dsn)
    finally:
        server.drop_db(db)
    metrics = writer_metrics(samples, begin, end, SLOW_MS)
    metrics.update(contender=contender, round=round_no, wall=end - begin, begin=begin, end=end, steps=steps,
                   series=[(s - begin, lat) for s, lat in zip(samples.starts, samples.latencies, strict=True)])
    return metrics


def run(ctx: Context, template: str) -> dict:
    project = Project.create(ctx.work / "stall_project", {"V001_base.py": BASE_SPEC, "V002_evolve.py": STALL_SPEC})
    runs: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
    for round_no in range(1, ctx.settings.rounds + 1):
        for contender in CONTENDERS:
            result = one_run(ctx, template, project, contender, round_no)
            runs[contender].append(result)
            ctx.log(f"  stall round {round_no} {contender:9s} wall {fmt_s(result['wall'])}, writer max "
                    f"{fmt_ms(result['max_latency'])}, >100ms {result['slow_seconds']:.2f}s, "
                    f"{result['throughput']:.0f} stmt/s")
    summary = {}
    for contender, items in runs.items():
        summary[contender] = {key: median([r[key] for r in items]) for key in
                              ("wall", "max_latency", "p99_latency", "p50_latency", "slow_seconds", "throughput",
                               "statements", "baseline_p50")}
        summary[contender]["worst_max_latency"] = max(r["max_latency"] for r in items)
        summary[contender]["writer_errors"] = sum(r["writer_errors"] for r in items)
    # the run with the median wall time of each contender is the one plotted
    plotted = {}
    for contender, items in runs.items():
        ordered = sorted(items, key=lambda r: r["wall"])
        plotted[contender] = ordered[len(ordered) // 2]
    return {"runs": runs, "summary": summary, "plotted": plotted,
            "ratios": {
                "max_latency_dbdeploy_vs_safe": ratio(summary["dbdeploy"]["max_latency"],
                                                      summary["safe"]["max_latency"]),
                "max_latency_naive_vs_dbdeploy": ratio(summary["naive"]["max_latency"],
                                                       summary["dbdeploy"]["max_latency"]),
                "wall_dbdeploy_vs_naive": ratio(summary["dbdeploy"]["wall"], summary["naive"]["wall"]),
                "wall_safe_vs_naive": ratio(summary["safe"]["wall"], summary["naive"]["wall"]),
            }}
