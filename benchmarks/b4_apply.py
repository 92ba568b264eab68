"""Benchmark 4, apply overhead: ``dbdeploy apply`` vs ``psql -f`` of the same bundle.

One bundle creates 60 tables, each with one index and one foreign key (a generated spec). Per
round, two fresh empty databases; all times are whole processes (spawn to exit):

- ``dbdeploy apply --env bench --plain`` on database A, ``psql -X -q -v ON_ERROR_STOP=1 -f
  <bundle>`` on database B;
- then the no-op re-apply of both: dbdeploy finds nothing pending; psql runs the whole file
  again (every step checks and skips);
- ``python -c "import psycopg"`` (the same interpreter) as the reference for the no-op target,
  and ``dbdeploy --version`` as the CLI's bare start-up.
"""

from __future__ import annotations

import sys

from benchmarks.common import Context, fmt_s, median, ratio
from benchmarks.project import DBDEPLOY, DSN_VAR, Project, run_timed, wide_spec

MEASURES = ("dbdeploy_apply", "psql_apply", "dbdeploy_noop", "psql_noop", "import_psycopg", "dbdeploy_version")
LABELS = {
    "dbdeploy_apply": "`dbdeploy apply`, fresh database",
    "psql_apply": "`psql -f` bundle, fresh database",
    "dbdeploy_noop": "`dbdeploy apply`, nothing pending (no-op)",
    "psql_noop": "`psql -f` bundle again (no-op)",
    "import_psycopg": '`python -c "import psycopg"`',
    "dbdeploy_version": "`dbdeploy --version` (CLI start-up)",
}


def import_profile(project: Project, dsn: str) -> dict | None:
    """Imports made by a no-op ``dbdeploy apply`` (``python -X importtime``): total and the heaviest."""
    proc = run_timed([sys.executable, "-X", "importtime", DBDEPLOY, "apply", "--env", "bench", "--plain"],
                     cwd=project.root, env={DSN_VAR: dsn})
    if proc.returncode != 0:
        return None
    total, packages = 0.0, {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, field = line[len("import time:"):].split("|")
        name, millis = field.strip(), int(cumulative) / 1000
        if field[1:2] != " ":          # a top-level import (nested ones are indented)
            total += millis
        if "." not in name or (name.startswith("dbdeploy.") and name.count(".") == 1):
            packages[name] = max(packages.get(name, 0.0), millis)
    top = sorted(((n, ms) for n, ms in packages.items() if n != "dbdeploy"), key=lambda item: item[1],
                 reverse=True)[:8]
    return {"total_ms": total, "top": top}


def run(ctx: Context) -> dict:
    server, settings = ctx.server, ctx.settings
    project = Project.create(ctx.work / "apply_project", {"V001_wide.py": wide_spec(settings.wide_tables)})
    bundle = project.bundle_sql("001")
    psql = [server.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    # cheap at full size: a few more rounds steady the medians (the quick run keeps to its budget)
    rounds = settings.rounds if settings.quick else max(settings.rounds, 5)
    runs: dict[str, list[float]] = {m: [] for m in MEASURES}
    imports = None
    for round_no in range(1, rounds + 1):
        db_a = server.create_db(f"apply_dbdeploy_{round_no}")
        db_b = server.create_db(f"apply_psql_{round_no}")
        try:
            dsn_a, dsn_b = server.dsn(db_a), server.dsn(db_b)
            server.checkpoint()
            runs["dbdeploy_apply"].append(project.apply(dsn_a).check("dbdeploy apply (benchmark 4)").seconds)
            runs["psql_apply"].append(run_timed([*psql, "-d", dsn_b, "-f", str(bundle)]).check("psql -f").seconds)
            runs["dbdeploy_noop"].append(project.apply(dsn_a).check("dbdeploy apply no-op").seconds)
            runs["psql_noop"].append(run_timed([*psql, "-d", dsn_b, "-f", str(bundle)]).check("psql -f no-op").seconds)
            runs["import_psycopg"].append(run_timed([sys.executable, "-c", "import psycopg"]).check("import").seconds)
            runs["dbdeploy_version"].append(project.dbdeploy("--version").check("dbdeploy --version").seconds)
            if round_no == rounds:
                imports = import_profile(project, dsn_a)
            with server.connect(db_a) as conn:
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'wide'").fetchone()[0]
            if tables != settings.wide_tables:
                raise RuntimeError(f"benchmark 4: {tables} tables created, expected {settings.wide_tables}")
        finally:
            server.drop_db(db_a)
            server.drop_db(db_b)
        ctx.log(f"  apply round {round_no}: " + ", ".join(f"{m} {fmt_s(runs[m][-1])}" for m in MEASURES))
    summary = {m: median(v) for m, v in runs.items()}
    return {"runs": runs, "summary": summary, "rounds": rounds, "tables": settings.wide_tables,
            "imports": imports,
            "ratios": {"apply_vs_psql": ratio(summary["dbdeploy_apply"], summary["psql_apply"]),
                       "noop_vs_import": ratio(summary["dbdeploy_noop"], summary["import_psycopg"]),
                       "noop_psql_vs_import": ratio(summary["psql_noop"], summary["import_psycopg"])}}
