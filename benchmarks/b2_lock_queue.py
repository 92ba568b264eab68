"""Benchmark 2, lock queue: a migration starts while another transaction holds a lock on the table.

A blocker transaction takes ``LOCK TABLE app.events IN ACCESS SHARE MODE`` (what any long
``SELECT`` holds) and keeps it for the blocker's duration. The writer is not blocked by it
(ROW EXCLUSIVE and ACCESS SHARE are compatible), but a migration that asks for ACCESS EXCLUSIVE
queues behind the blocker, and from then on every writer statement queues behind the migration.

The migration: ADD COLUMN flagged boolean NOT NULL DEFAULT false (catalog only), ADD CHECK
(hits >= 0) NOT VALID, VALIDATE. Contenders:

- ``plain``: exactly that DDL from psycopg with ``lock_timeout = 0`` (wait as long as it takes);
- ``dbdeploy``: ``dbdeploy apply`` with dbdeploy's default environment settings (nothing but
  the DSN in dbdeploy.toml); the targets are judged on this one;
- ``dbdeploy-5s``: ``dbdeploy apply`` with ``lock_timeout = "5s"`` in dbdeploy.toml, to show
  what a long lock_timeout does to the writer (each attempt queues it for up to 5 s).

A writer statement slower than 20 ms counts as a stall (the writer's median is ~0.25 ms); the
totals are taken from the moment the blocker holds its lock until both the blocker and the
migration are done.
"""

from __future__ import annotations

import threading
import time

import psycopg

from benchmarks.b1_stall import writer_metrics
from benchmarks.common import STALL_MS, Context, fmt_ms, fmt_s, median
from benchmarks.project import BASE_SPEC, LOCK_SPEC, Project, default_settings
from benchmarks.writer import Writer

CONTENDERS = ("plain", "dbdeploy", "dbdeploy-5s")
PLAIN_DDL = [
    "ALTER TABLE app.events ADD COLUMN flagged boolean NOT NULL DEFAULT false",
    "ALTER TABLE app.events ADD CONSTRAINT chk_events_hits CHECK (hits >= 0) NOT VALID",
    "ALTER TABLE app.events VALIDATE CONSTRAINT chk_events_hits",
]


class Blocker(threading.Thread):
    def __init__(self, dsn: str, seconds: float) -> None:
        super().__init__(daemon=True)
        self.dsn, self.seconds = dsn, seconds
        self.locked = threading.Event()
        self.lock_at = self.release_at = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self.dsn, application_name="dbdeploy-bench-blocker") as conn:
                conn.execute("LOCK TABLE app.events IN ACCESS SHARE MODE")
                self.lock_at = time.time()
                self.locked.set()
                conn.execute("SELECT pg_catalog.pg_sleep(%s)", [self.seconds])
                conn.commit()
                self.release_at = time.time()
        except BaseException as exc:  # reported by the benchmark thread
            self.error = exc
            self.locked.set()


def one_run(ctx: Context, template: str, projects: dict[str, Project], contender: str, round_no: int) -> dict:
    server, settings = ctx.server, ctx.settings
    db = server.create_db(f"lockq_{contender.replace('-', '_')}_{round_no}", template)
    attempts = None
    try:
        server.checkpoint()
        dsn = server.dsn(db)
        with Writer(dsn, settings.rows, ctx.work / f"writer_lockq_{contender}_{round_no}.json",
                    settings.writer_rate, 300 + settings.blocker_seconds * 4) as writer:
            time.sleep(settings.warmup)
            blocker = Blocker(dsn, settings.blocker_seconds)
            blocker.start()
            if not blocker.locked.wait(30) or blocker.error:
                raise RuntimeError(f"the blocker could not take its lock: {blocker.error}")
            mig_start = time.time()
            if contender == "plain":
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("SET lock_timeout = 0")
                    for statement in PLAIN_DDL:
                        conn.execute(statement)
                outcome = "ok"
            else:
                result = projects[contender].apply(dsn, timeout=600 + settings.blocker_seconds * 4)
                outcome = "ok" if result.returncode == 0 else f"failed (exit {result.returncode})"
            mig_end = time.time()
            blocker.join(settings.blocker_seconds + 60)
            time.sleep(settings.tail)
            samples = writer.stop()
        if contender != "plain":
            with psycopg.connect(dsn, autocommit=True) as conn:
                attempts = conn.execute("SELECT max(attempts), sum(attempts - 1) FROM migrations.performance_log"
                                        " WHERE version = '002'").fetchone()
    finally:
        server.drop_db(db)
    begin, end = blocker.lock_at, max(blocker.release_at or time.time(), mig_end)
    metrics = writer_metrics(samples, begin, end, STALL_MS)
    metrics.update(contender=contender, round=round_no, outcome=outcome, migration_wall=mig_end - mig_start,
                   blocker_seconds=settings.blocker_seconds,
                   stall_fraction=metrics["stall_seconds"] / settings.blocker_seconds,
                   retries=(attempts[1] if attempts and attempts[1] is not None else 0),
                   steps=[{"label": "blocker holds ACCESS SHARE", "start": blocker.lock_at,
                           "end": blocker.release_at or end},
                          {"label": "migration", "start": mig_start, "end": mig_end}],
                   begin=begin, end=end,
                   series=[(s - begin, lat) for s, lat in zip(samples.starts, samples.latencies, strict=True)])
    return metrics


def run(ctx: Context, template: str) -> dict:
    specs = {"V001_base.py": BASE_SPEC, "V002_flag.py": LOCK_SPEC}
    projects = {
        "dbdeploy": Project.create(ctx.work / "lockq_default", specs),
        "dbdeploy-5s": Project.create(ctx.work / "lockq_5s", specs, lock_timeout=ctx.settings.long_lock_timeout),
    }
    runs: dict[str, list[dict]] = {c: [] for c in CONTENDERS}
    for round_no in range(1, ctx.settings.rounds + 1):
        for contender in CONTENDERS:
            result = one_run(ctx, template, projects, contender, round_no)
            runs[contender].append(result)
            ctx.log(f"  lock-queue round {round_no} {contender:16s} {result['outcome']}, longest stall "
                    f"{fmt_ms(result['max_latency'])}, stalls total {fmt_s(result['stall_seconds'])} "
                    f"({result['stall_fraction']:.0%} of blocker), migration {fmt_s(result['migration_wall'])}, "
                    f"retries {result['retries']}")
    summary = {}
    for contender, items in runs.items():
        summary[contender] = {key: median([r[key] for r in items]) for key in
                              ("max_latency", "stall_seconds", "stall_fraction", "stall_count", "migration_wall",
                               "throughput", "retries", "baseline_p50")}
        summary[contender]["worst_max_latency"] = max(r["max_latency"] for r in items)
        summary[contender]["outcomes"] = sorted({r["outcome"] for r in items})
    plotted = {c: sorted(items, key=lambda r: r["stall_seconds"])[len(items) // 2] for c, items in runs.items()}
    return {"runs": runs, "summary": summary, "plotted": plotted, "defaults": default_settings(),
            "labels": labels(ctx.settings)}


def labels(settings) -> dict[str, str]:
    defaults = default_settings()
    shown = ", ".join(f"{k} {v}" for k, v in defaults.items())
    return {"plain": "same DDL, no lock_timeout",
            "dbdeploy": f"dbdeploy, default settings ({shown})",
            "dbdeploy-5s": f"dbdeploy, lock_timeout {settings.long_lock_timeout} (other settings default)"}
