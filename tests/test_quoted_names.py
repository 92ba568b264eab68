"""Quoted mixed-case names (issue 12) beyond the round trip: for every ``quoted_aspnet_*`` case of
tests/test_ops_roundtrip.py, the checklist's prerequisites give their expected results before the
forward, its health checks after it, every expectation of the manifest passes ``verify``, and the
bundle's generated test file passes after the forward and (``-m rolled_back``) after the rollback. A
name that lost its case on the way (``'public.AspNetUsers'::regclass`` folds to ``aspnetusers``)
makes a query error or answer wrongly here. Real SQL on both servers (tests/pg.py fixtures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from dbdeploy.bundle import catalog_checks
from dbdeploy.plan.loader import LoadedMigration
from dbdeploy.plan.migration_plan import plan_all
from tests.bundles import write_bundles
from tests.pg import TestDatabase
from tests.test_ops_roundtrip import QUOTED_NAME_CASES

CASES = [c for c in QUOTED_NAME_CASES if c.id.startswith("quoted_aspnet_")]

# The suite runs these on the primary server (their round trips in tests/test_ops_roundtrip.py run on
# every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True


def _result(db: TestDatabase, query: str) -> str:
    rows = db.execute(query)
    if not rows:
        return "no rows"
    value = rows[0][0]
    return {True: "true", False: "false", None: "null"}.get(value, str(value)) if isinstance(value, bool | None) \
        else str(value)


def _exact(expected: str) -> bool:
    """Whether ``expected`` is a value to compare (not a description such as ``varchar(256) (as
    PostgreSQL spells it, …)`` or the empty text of an informational row)."""
    return expected != "" and " (" not in expected


def _dropped_earlier(case, title: str) -> bool:
    """The prerequisite "No foreign key uses <key> …" of a key whose foreign keys an earlier
    DropConstraint of the same migration drops: the checklist runs every prerequisite before the
    forward, so it still sees them (a known limitation of that checklist row, not of quoted names;
    the forward itself checks after the earlier drops)."""
    return title.startswith("No foreign key uses ") and any(
        type(op).__name__ == "DropConstraint" for op in case.migrations[-1].operations[:-1])


def _generated(db: TestDatabase, folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DBDEPLOY_TEST_DSN=db.dsn)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--rootdir", str(folder), str(folder / f"test_{folder.name}.py"), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def _verify(db: TestDatabase, manifest: Path) -> list[str]:
    expects = json.loads(manifest.read_text())["expects"]
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog, pg_temp")
        return [problem for entry in expects if (problem := catalog_checks.run_check(conn, entry))]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_quoted_checklist_and_verify(case, fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    db = fresh_db_each
    migrations = sorted(case.migrations, key=lambda m: int(m.version))
    bundles = write_bundles(migrations, tmp_path)
    plan = plan_all([LoadedMigration(m, Path(f"V{m.version}_{m.name}.py")) for m in migrations])[-1]
    if case.setup:
        db.execute(case.setup)
    for m in migrations[:-1]:
        db.psql_file(bundles[m.version].forward)
    if case.populate:
        db.execute(case.populate)
    wrong = [(q.title, _result(db, q.sql), q.expected) for part in plan.checklist for q in part.prerequisites
             if not q.otherwise and _exact(q.expected) and not _dropped_earlier(case, q.title)
             and _result(db, q.sql) != q.expected]
    assert wrong == []
    bundle = bundles[migrations[-1].version]
    db.psql_file(bundle.forward)
    checks = [q for part in plan.checklist for q in part.health_checks]
    assert checks
    wrong = [(q.title, _result(db, q.sql), q.expected) for q in checks
             if _exact(q.expected) and _result(db, q.sql) != q.expected]
    assert wrong == []
    assert _verify(db, bundle.manifest) == []
    applied = _generated(db, bundle.folder)
    assert applied.returncode == 0, applied.stdout[-3000:]
    db.psql_file(bundle.rollback)
    rolled_back = _generated(db, bundle.folder, "-m", "rolled_back")
    assert rolled_back.returncode == 0, rolled_back.stdout[-3000:]
