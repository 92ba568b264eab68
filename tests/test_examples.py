"""The committed example bundles (generated/V001–V003) on a populated database, PG 15 and 16.

Exactly what a DBA would do with nothing but psql: forward twice, rollback twice, forward
again, with the catalog (and the data the steps touch) compared at every point.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import catalog

GENERATED = Path(__file__).resolve().parent.parent / "generated"
EVENTS = "raw.site_tracking_events_r"


def _bundle(version: str) -> tuple[Path, Path]:
    (folder,) = GENERATED.glob(f"V{version}__*")
    forward = next(p for p in folder.glob("V*.sql") if "__rollback_" not in p.name)
    rollback = next(folder.glob("V*__rollback_*.sql"))
    return forward, rollback


VERSIONS = ["001", "002", "003"]

POPULATE = """
INSERT INTO raw.site_tracking_events_r (tenant_hk, raw_payload, batch_id, error_message, client_ip)
SELECT decode(md5(g::text), 'hex'),
       jsonb_build_object('event_type', CASE WHEN g % 3 = 0 THEN NULL ELSE 'view' END, 'n', g),
       'batch-' || (g % 7), CASE WHEN g % 5 = 0 THEN NULL ELSE 'err ' || g END, '10.0.0.1'
FROM generate_series(1, 12000) AS g;
INSERT INTO raw.site_tracking_sessions_r (session_id, event_count) VALUES ('s-1', 3), ('s-2', 5);
"""


def _rows(db) -> list[dict]:
    """Every row as a name → value mapping: a restored column comes back at the end of the
    table, and what matters is that each row has the same values, not the column order."""
    return [r[0] for r in db.execute(f"SELECT to_jsonb(t) FROM {EVENTS} AS t ORDER BY raw_event_id")]


def _log(db) -> dict[str, str]:
    return dict(db.execute("SELECT version, status FROM migrations.migration_log ORDER BY version"))


def test_examples_round_trip_on_populated_database(fresh_db_each) -> None:
    db = fresh_db_each
    conn = db.connect()
    empty = catalog.snapshot(conn)

    forward = {v: _bundle(v)[0] for v in VERSIONS}
    rollback = {v: _bundle(v)[1] for v in VERSIONS}

    db.psql_file(forward["001"])
    db.psql_file(forward["001"])
    db.execute(POPULATE)
    before_v2 = catalog.snapshot(conn)
    rows_before_v2 = _rows(db)
    db.psql_file(forward["002"])
    after_v2 = catalog.snapshot(conn)
    rows_after_v2 = _rows(db)
    db.psql_file(forward["002"])  # a second run: no error and no second effect
    assert catalog.snapshot(conn) == after_v2, catalog.diff(after_v2, catalog.snapshot(conn))
    assert _rows(db) == rows_after_v2
    db.psql_file(forward["003"])
    applied = catalog.snapshot(conn)
    applied_rows = _rows(db)
    db.psql_file(forward["003"])
    assert catalog.snapshot(conn) == applied, catalog.diff(applied, catalog.snapshot(conn))
    assert _rows(db) == applied_rows
    assert _log(db) == dict.fromkeys(VERSIONS, "completed")

    # The evolution did its job on the populated table.
    assert db.execute(f"SELECT count(*) FROM {EVENTS} WHERE event_type IS NULL OR event_uuid IS NULL") == [(0,)]
    assert db.execute(f"SELECT count(*) FROM {EVENTS} WHERE event_type = 'unknown'") == [(4000,)]
    assert db.execute(f"SELECT count(DISTINCT event_uuid) FROM {EVENTS}") == [(12000,)]
    columns = applied["tables"][EVENTS]["columns"]
    assert columns["event_type"]["not_null"] and columns["event_uuid"]["not_null"]
    assert "error_message" not in columns
    assert "raw.site_tracking_sessions_r" not in applied["tables"]
    assert all(c["validated"] for c in applied["tables"][EVENTS]["constraints"].values())
    assert all(i["valid"] for i in applied["indexes"].values())

    # Roll V003 back twice: the dropped column, index and table come back with their data.
    db.psql_file(rollback["003"])
    db.psql_file(rollback["003"])
    assert db.execute(f"SELECT count(*) FROM {EVENTS} WHERE error_message IS NOT NULL") == [(9600,)]
    assert db.execute("SELECT session_id, event_count FROM raw.site_tracking_sessions_r ORDER BY 1") == [
        ("s-1", 3), ("s-2", 5)]

    # Roll V002 back twice: back to the catalog and the rows as they were before V002.
    db.psql_file(rollback["002"])
    db.psql_file(rollback["002"])
    after = catalog.snapshot(conn)
    assert after == before_v2, catalog.diff(before_v2, after)
    assert _rows(db) == rows_before_v2

    # Roll V001 back twice: the catalog equals the empty database's (history/backup aside).
    db.psql_file(rollback["001"])
    db.psql_file(rollback["001"])
    assert catalog.snapshot(conn) == empty, catalog.diff(empty, catalog.snapshot(conn))
    assert _log(db) == dict.fromkeys(VERSIONS, "rolled_back")
    backups = {r[0] for r in db.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'dbdeploy_backup'::regnamespace AND relkind = 'r'")}
    assert any(name.startswith("r001_site_tracking_events_r_") for name in backups), backups

    # And forward again, in order.
    for v in VERSIONS:
        db.psql_file(forward[v])
    assert _log(db) == dict.fromkeys(VERSIONS, "completed")
    again = catalog.snapshot(conn)
    assert set(again["tables"]) == set(applied["tables"])
    assert again["indexes"] == applied["indexes"]


@pytest.mark.parametrize("version", VERSIONS)
def test_examples_each_run_twice_on_empty_database(fresh_db, version: str) -> None:
    """Every bundle is idempotent even with no rows (batched steps see an empty table)."""
    for v in VERSIONS[: VERSIONS.index(version)]:
        fresh_db.psql_file(_bundle(v)[0])
    forward, rollback = _bundle(version)
    conn = fresh_db.connect()
    before = catalog.snapshot(conn)
    fresh_db.psql_file(forward)
    after = catalog.snapshot(conn)
    fresh_db.psql_file(forward)
    assert catalog.snapshot(conn) == after
    fresh_db.psql_file(rollback)
    fresh_db.psql_file(rollback)
    assert catalog.snapshot(conn) == before, catalog.diff(before, catalog.snapshot(conn))
