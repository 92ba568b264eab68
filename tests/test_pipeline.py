"""`dbdeploy test`: apply → tests → rollback → rolled-back tests → apply → tests, on a scratch
database that is dropped afterwards."""

from __future__ import annotations

import hashlib
import json
import re

import psycopg

from tests.executor_support import make_project


def _scratch_databases(server) -> set[str]:
    with psycopg.connect(server.admin_dsn, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbdeploy_test_%'")}


def test_dbdeploy_test_passes_on_the_examples_and_drops_its_scratch_database(pg_server, tmp_path) -> None:
    project = make_project(tmp_path, None)
    result = project.run("test", "--dsn", pg_server.admin_dsn, "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dbdeploy test passed" in result.stdout
    for label in ("V001", "V002", "V003"):
        row = next(line for line in result.stdout.splitlines() if label in line)
        assert row.count("pass") == 3, row
    # Other test processes may create scratch databases meanwhile: look for this run's own, by name.
    names = set(re.findall(r"dbdeploy_test_\w+", result.stdout + result.stderr))
    assert names, result.stdout
    assert not names & _scratch_databases(pg_server)


def test_keep_leaves_the_scratch_database(pg_server, tmp_path) -> None:
    project = make_project(tmp_path, None)
    result = project.run("test", "--dsn", pg_server.admin_dsn, "--keep", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    kept = set(re.findall(r"dbdeploy_test_\w+", result.stdout)) & _scratch_databases(pg_server)
    assert len(kept) == 1
    (name,) = kept
    with psycopg.connect(pg_server.admin_dsn, autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("DROP DATABASE {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def test_a_rollback_that_leaves_an_object_behind_fails(pg_server, tmp_path) -> None:
    project = make_project(tmp_path, None)
    folder = next(project.generated.glob("V002__*"))
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    rollback = folder / manifest["files"]["rollback"]["name"]
    text = rollback.read_text()
    drop = 'ALTER TABLE "raw"."site_tracking_events_r" DROP COLUMN "event_uuid";'
    assert text.count(drop) == 1
    rollback.write_text(text.replace(drop, "NULL;  -- the column is left behind"))
    # Keep the manifest consistent, as a buggy generator would: the generated test must catch it.
    manifest["files"]["rollback"]["sha256"] = hashlib.sha256(rollback.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    result = project.run("test", "--dsn", pg_server.admin_dsn, "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if "V002" in line)
    assert "FAIL" in row
    assert "column raw.site_tracking_events_r.event_uuid is still present" in result.stderr
    assert "dbdeploy test passed" not in result.stdout
