"""Benchmark 7, every operation's forward and rollback under the paced writer (issue 10, item 11).

For each operation of the DSL (the kinds in ``specs/`` and the golden cases) a fresh copy of the
template (``app.events`` with N rows) gets the operation's earlier migrations applied (an index for
DropIndex to drop), then the writer (``benchmarks.writer``: one single-row UPDATE of
``app.events`` every 2 ms, its own process and connection) starts, ``dbdeploy apply`` runs the
operation's migration, and ``dbdeploy rollback`` undoes it. Reported per operation and phase: the
slowest writer statement that started while that phase ran (its worst stall), the number of
statements over the stall threshold, and the dbdeploy step running when the worst statement
started (from ``migrations.performance_log``). The README's promise — nobody waits behind
dbdeploy longer than ``lock_timeout`` — holds for a phase when its worst stall stays below the
environment's ``lock_timeout`` (dbdeploy's default; noise on a loaded machine adds to it).
"""

from __future__ import annotations

import time

import psycopg

from benchmarks.common import STALL_MS, Context, fmt_ms, fmt_s
from benchmarks.project import BASE_SPEC, Project, default_settings
from benchmarks.writer import Writer

_HEAD = "from dbdeploy import *  # noqa: F403\n\n"

# (label, earlier migration applied before the writer starts or None, the measured migration's operations)
CASES: list[tuple[str, str | None, str]] = [
    ("CreateTable", None, 'CreateTable(table="app.widgets", columns=[Column(name="id", type="bigint"),'
                          ' Column(name="name", type="text")], primary_key=["id"],'
                          ' indexes=[Index(columns=["name"])])'),
    ("AddColumn", None, 'AddColumn(table="app.events", column=Column(name="note", type="text"))'),
    ("AddColumn + default", None, 'AddColumn(table="app.events", column=Column(name="score", type="integer",'
                                  ' nullable=False, default="0"))'),
    ("AddColumn NOT NULL + Backfill", None,
     'AddColumn(table="app.events", column=Column(name="event_type", type="text", nullable=False)),\n'
     '    Backfill(table="app.events", set={"event_type": "coalesce(payload ->> \'kind\', \'unknown\')"},'
     ' where="event_type IS NULL", batch_size=5000)'),
    ("Backfill", None, 'Backfill(table="app.events", set={"category": "coalesce(payload ->> \'kind\', \'x\')"},'
                       ' where="category IS NULL", batch_size=5000)'),
    ("AddCheck", None, 'AddCheck(table="app.events", check=Check(name="chk_events_hits", expression="hits >= 0"))'),
    ("AddForeignKey", None, 'AddForeignKey(table="app.events", foreign_key=ForeignKey(name="fk_events_source",'
                            ' columns=["source_id"], references="app.sources", ref_columns=["id"]))'),
    ("AddUnique", None, 'AddUnique(table="app.events", unique=Unique(name="uq_events_external_id",'
                        ' columns=["external_id"]))'),
    ("CreateIndex", None, 'CreateIndex(table="app.events", index=Index(name="idx_events_created",'
                          ' columns=["created_at"]))'),
    ("DropIndex", 'CreateIndex(table="app.events", index=Index(name="idx_events_created", columns=["created_at"]))',
     'DropIndex(name="app.idx_events_created")'),
    ("DropColumn", None, 'DropColumn(table="app.events", column="payload")'),
    ("DropTable", None, 'DropTable(table="app.sources")'),
    ("SeedRows", None, 'SeedRows(table="app.sources", conflict_columns=["id"], rows=[{"id": 1000 + i,'
                       ' "name": f"seeded {i}"} for i in range(50)])'),
    ("RequireExtension", None, 'RequireExtension(name="plpgsql")'),
    ("RawSQL (index concurrently)", None,
     'RawSQL(forward="CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_hits ON app.events (hits)",'
     ' rollback="DROP INDEX CONCURRENTLY IF EXISTS app.idx_events_hits")'),
]
QUICK = ("AddColumn + default", "Backfill", "DropColumn", "CreateIndex")
WRITER_RATE = 500.0


def _spec(version: str, name: str, operations: str) -> str:
    return _HEAD + (f'migration = Migration(version="{version}", name="{name}", operations=[\n'
                    f'    {operations},\n])\n')


def _steps(dsn: str, version: str, direction: str) -> list[dict]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT step, kind, extract(epoch FROM started_at)::float8, extract(epoch FROM ended_at)::float8"
            " FROM migrations.performance_log WHERE version = %s AND direction = %s ORDER BY started_at, step",
            [version, direction]).fetchall()
    return [{"label": f"{step} {kind}", "start": start, "end": end} for step, kind, start, end in rows]


def _phase(samples, steps: list[dict], begin: float, end: float) -> dict:
    window = samples.window(begin, end)
    worst_start, worst = max(window, key=lambda x: x[1], default=(begin, float("nan")))
    during = next((s["label"] for s in steps if s["start"] <= worst_start <= s["end"]), "between steps")
    return {"worst": worst, "worst_step": during, "statements": len(window),
            "stalls": sum(1 for _, lat in window if lat * 1000 > STALL_MS), "wall": end - begin}


def one_case(ctx: Context, template: str, index: int, label: str, earlier: str | None, operations: str) -> dict:
    server, settings = ctx.server, ctx.settings
    specs = {"V001_base.py": BASE_SPEC}
    if earlier:
        specs["V002_earlier.py"] = _spec("002", "earlier", earlier)
    version = "003" if earlier else "002"
    specs[f"V{version}_op.py"] = _spec(version, "op", operations)
    project = Project.create(ctx.work / f"ops_{index}", specs)
    db = server.create_db(f"ops_{index}", template)
    try:
        dsn = server.dsn(db)
        if earlier:
            project.apply(dsn, "--to", "002").check(f"{label}: earlier migration")
        server.checkpoint()
        with Writer(dsn, settings.rows, ctx.work / f"writer_ops_{index}.json", WRITER_RATE,
                    120 + settings.rows / 2_000) as writer:
            time.sleep(settings.warmup)
            f_begin = time.time()
            project.apply(dsn, timeout=3600).check(f"{label}: dbdeploy apply")
            f_end = time.time()
            time.sleep(settings.tail)
            r_begin = time.time()
            project.dbdeploy("rollback", "--env", "bench", "--plain", "--to", "002" if earlier else "001",
                             dsn=dsn, timeout=3600).check(f"{label}: dbdeploy rollback")
            r_end = time.time()
            time.sleep(settings.tail)
            samples = writer.stop()
        baseline = _phase(samples, [], samples.starts[0] if samples.starts else f_begin, f_begin)
        forward = _phase(samples, _steps(dsn, version, "forward"), f_begin, f_end)
        rollback = _phase(samples, _steps(dsn, version, "rollback"), r_begin, r_end)
    finally:
        server.drop_db(db)
    return {"label": label, "baseline": baseline, "forward": forward, "rollback": rollback,
            "writer_errors": samples.error_count}


def run(ctx: Context, template: str) -> dict:
    cases = [c for c in CASES if not ctx.settings.quick or c[0] in QUICK]
    results = []
    for index, (label, earlier, operations) in enumerate(cases, start=1):
        result = one_case(ctx, template, index, label, earlier, operations)
        results.append(result)
        ctx.log(f"  ops {label:30s} alone {fmt_ms(result['baseline']['worst'])}, "
                f"forward worst {fmt_ms(result['forward']['worst'])} "
                f"({result['forward']['worst_step']}), rollback worst {fmt_ms(result['rollback']['worst'])} "
                f"({result['rollback']['worst_step']})")
    return {"cases": results, "settings": default_settings(), "writer_rate": WRITER_RATE}


def _seconds(text: str) -> float:
    text = text.strip()
    for unit, factor in (("ms", 0.001), ("s", 1.0), ("min", 60.0)):
        if text.endswith(unit) and text[: -len(unit)].strip().replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * factor
    return float(text) / 1000 if text.replace(".", "", 1).isdigit() else float("nan")


def lock_timeout_seconds(result: dict) -> float:
    return _seconds(result["settings"]["lock_timeout"])


def section(result: dict | None, rows: int, plot: str | None) -> list[str]:
    """BENCHMARKS.md section 7."""
    if not result:
        return []
    bound = lock_timeout_seconds(result)
    settings = result["settings"]
    out = ["## 7. Every operation under the writer", "",
           f"Each operation's migration applied (`dbdeploy apply`) and rolled back (`dbdeploy rollback`) on a copy of "
           f"the {rows:,}-row `app.events` table while the writer updates one random row every "
           f"{1000 / result['writer_rate']:.0f} ms. Worst = the slowest writer statement that started during the "
           f"phase; stalls = statements over {STALL_MS:.0f} ms; step = the dbdeploy step running when the worst one "
           "started (\"between steps\": outside every step, e.g. process start-up: noise); writer alone = the "
           "slowest statement during the warm-up before the apply, the machine's own noise. dbdeploy's defaults: "
           f"lock_timeout {settings['lock_timeout']}, retries {settings['retries']}"
           + (f", concurrent_lock_timeout {settings['concurrent_lock_timeout']}"
              if "concurrent_lock_timeout" in settings else "") + ". One round.", ""]
    table = []
    for case in result["cases"]:
        f, r = case["forward"], case["rollback"]
        table.append([case["label"], fmt_ms(case["baseline"]["worst"]), fmt_ms(f["worst"]), str(f["stalls"]),
                      f["worst_step"], fmt_s(f["wall"]),
                      fmt_ms(r["worst"]), str(r["stalls"]), r["worst_step"], fmt_s(r["wall"]),
                      "yes" if max(f["worst"], r["worst"]) < bound else "**no**"])
    out += ["| operation | writer alone | forward worst | stalls | during step | forward wall | rollback worst "
            "| stalls | during step | rollback wall | under lock_timeout |",
            "|---|---:|---:|---:|---|---:|---:|---:|---|---:|---|",
            *("| " + " | ".join(row) + " |" for row in table), ""]
    if plot:
        out += [f"![worst writer stall per operation]({plot})", ""]
    return out
