"""The template database the online benchmarks copy: ``app.events`` with N rows, built once.

V001 (the table) is applied with ``dbdeploy apply --to 001`` so every copy has dbdeploy's history
and each benchmark's V002 is the only pending bundle. Rows are generated server-side; ids are
1..N, ``external_id`` is a permutation (unique, not in id order), ``payload`` is a small jsonb
with a ``kind``. After loading: ``VACUUM (FREEZE, ANALYZE)`` and a checkpoint, so no copy
starts with hint-bit writes or a pending checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.project import BASE_SPEC, Project
from benchmarks.server import Server

SOURCES = 100


def build_events_template(server: Server, work: Path, rows: int, log) -> str:
    name = server.create_db("tmpl_events")
    project = Project.create(work / "template_project", {"V001_base.py": BASE_SPEC})
    project.apply(server.dsn(name), "--to", "001").check("dbdeploy apply --to 001 on the template")
    with server.connect(name) as conn:
        conn.execute("INSERT INTO app.sources (id, name) SELECT g, 'source ' || g FROM generate_series(1, %s) g",
                     [SOURCES])
        chunk = 500_000
        for low in range(1, rows + 1, chunk):   # bounded: ceil(rows / chunk) statements
            high = min(rows, low + chunk - 1)
            conn.execute(
                "INSERT INTO app.events (id, source_id, external_id, payload, created_at, hits)"
                " SELECT g, 1 + g %% %s, (g * 2654435761) %% 4294967296,"
                " jsonb_build_object('kind', (ARRAY['click', 'view', 'buy', 'scroll'])[1 + g %% 4], 'n', g),"
                " timestamptz '2024-01-01' + g * interval '1 second', 0"
                " FROM generate_series(%s::bigint, %s::bigint) g", [SOURCES, low, high])
            log(f"  template: {high:,} / {rows:,} rows")
        conn.execute("VACUUM (FREEZE, ANALYZE) app.events")
        conn.execute("VACUUM (FREEZE, ANALYZE) app.sources")
        size = conn.execute("SELECT pg_catalog.pg_size_pretty(pg_catalog.pg_database_size(current_database()))"
                            ).fetchone()[0]
    server.checkpoint()
    log(f"  template {name}: {rows:,} rows, {size}")
    return name
