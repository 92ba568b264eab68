"""The generated pytest file of every example bundle checks something real: it passes on the
state the bundle produces and fails, saying what is wrong, on any other state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
GENERATED = REPO / "generated"
VERSIONS = ["001", "002", "003"]


def _folder(version: str) -> Path:
    (folder,) = GENERATED.glob(f"V{version}__*")
    return folder


def _file(version: str, kind: str) -> Path:
    folder = _folder(version)
    manifest = json.loads((folder / "manifest.json").read_text())
    if kind == "test":
        return folder / f"test_{folder.name}.py"
    return folder / manifest["files"][kind]["name"]


def _pytest(db, version: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DBDEPLOY_TEST_DSN=db.dsn)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
                           str(_folder(version)), str(_file(version, "test")), *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def _apply_up_to(db, version: str) -> None:
    """Apply the bundles up to ``version``, with rows in the events table from V001 on."""
    for v in VERSIONS[: VERSIONS.index(version) + 1]:
        db.psql_file(_file(v, "forward"))
        if v == "001":
            db.execute(POPULATE)


POPULATE = ("INSERT INTO raw.site_tracking_events_r (raw_payload, batch_id, error_message)"
            " SELECT jsonb_build_object('event_type', CASE WHEN g % 2 = 0 THEN 'click' END), 'b' || g, 'e'"
            " FROM generate_series(1, 3000) g")


@pytest.mark.parametrize("version", VERSIONS)
def test_generated_test_passes_after_apply_and_fails_before(fresh_db, version: str) -> None:
    before = _pytest(fresh_db, version)
    assert before.returncode == 1, before.stdout
    assert "is missing" in before.stdout or "has no row for version" in before.stdout

    if version != "001":
        _apply_up_to(fresh_db, VERSIONS[VERSIONS.index(version) - 1])
    still_before = _pytest(fresh_db, version)
    assert still_before.returncode == 1, still_before.stdout
    fresh_db.psql_file(_file(version, "forward"))
    if version == "001":
        fresh_db.execute(POPULATE)
    after = _pytest(fresh_db, version)
    assert after.returncode == 0, after.stdout
    assert " passed" in after.stdout and "failed" not in after.stdout


# One object removed or altered by hand per bundle, and the message the test must give.
SABOTAGE = {
    "001": ("DROP INDEX raw.idx_site_tracking_events_r_tenant_time",
            "index raw.idx_site_tracking_events_r_tenant_time is missing"),
    "002": ("ALTER TABLE raw.site_tracking_events_r DROP CONSTRAINT fk_site_tracking_events_r_source",
            "foreign key fk_site_tracking_events_r_source on raw.site_tracking_events_r is missing"),
    "003": ("ALTER TABLE raw.site_tracking_events_r ADD COLUMN error_message text",
            "column raw.site_tracking_events_r.error_message is still present"),
}


@pytest.mark.parametrize("version", VERSIONS)
def test_generated_test_fails_when_one_object_is_dropped_by_hand(fresh_db, version: str) -> None:
    _apply_up_to(fresh_db, version)
    assert _pytest(fresh_db, version).returncode == 0
    statement, message = SABOTAGE[version]
    fresh_db.execute(statement)
    broken = _pytest(fresh_db, version)
    assert broken.returncode == 1, broken.stdout
    assert message in broken.stdout
    assert broken.stdout.count("FAILED") == 1, broken.stdout


@pytest.mark.parametrize("version", VERSIONS)
def test_rolled_back_group_passes_after_rollback_and_fails_before(fresh_db, version: str) -> None:
    _apply_up_to(fresh_db, version)
    before = _pytest(fresh_db, version, "-m", "rolled_back")
    assert before.returncode == 1, before.stdout
    fresh_db.psql_file(_file(version, "rollback"))
    after = _pytest(fresh_db, version, "-m", "rolled_back")
    assert after.returncode == 0, after.stdout
    assert " passed" in after.stdout


def test_rolled_back_group_is_skipped_without_the_marker(fresh_db) -> None:
    _apply_up_to(fresh_db, "001")
    result = _pytest(fresh_db, "001")
    assert result.returncode == 0, result.stdout
    assert "skipped" in result.stdout


def test_missing_dsn_fails_clearly() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DBDEPLOY_TEST_DSN"}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(_file("001", "test"))],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert proc.returncode == 1
    assert "set DBDEPLOY_TEST_DSN" in proc.stdout


def _pytest_generated(project, dsn: str) -> subprocess.CompletedProcess:
    """``pytest generated/`` in the project folder, as the README tells a user to run it."""
    env = dict(os.environ, DBDEPLOY_TEST_DSN=dsn)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", "generated/"],
                          cwd=project.root, capture_output=True, text=True, env=env, timeout=600, check=False)


def test_pytest_generated_passes_after_cli_apply_of_every_example_and_after_baseline(fresh_db_each, db_factory,
                                                                                    tmp_path) -> None:
    """Issue 9, done-when: ``dbdeploy apply`` of all example versions, then ``pytest generated/``;
    and ``dbdeploy baseline`` on a database made to match (the bundles' SQL run with psql, the
    history removed), then ``pytest generated/``. V003 drops what V001 made: those checks are
    skipped naming V003; everything else runs and passes."""
    from tests.executor_support import make_project

    applied = fresh_db_each
    project = make_project(tmp_path / "applied", applied.dsn)
    result = project.run("apply", "--env", "test", "--to", "001")
    assert result.returncode == 0, result.stderr
    applied.execute(POPULATE)
    assert project.run("apply", "--env", "test").returncode == 0
    run = _pytest_generated(project, applied.dsn)
    assert run.returncode == 0, run.stdout[-6000:]
    assert "superseded by V003, which drops column raw.site_tracking_events_r.error_message" in run.stdout
    assert "superseded by V003, which drops table raw.site_tracking_sessions_r" in run.stdout
    assert "superseded by V003, which drops index raw.idx_site_tracking_events_r_batch" in run.stdout

    matched = db_factory(fresh_db_each.server)
    for version in VERSIONS:
        matched.psql_file(_file(version, "forward"))
        if version == "001":
            matched.execute(POPULATE)
    matched.execute("DROP SCHEMA migrations CASCADE")
    baselined = make_project(tmp_path / "baselined", matched.dsn)
    result = baselined.run("baseline", "--env", "test", "--version", "003")
    assert result.returncode == 0, result.stdout + result.stderr
    assert matched.execute("SELECT DISTINCT status FROM migrations.migration_log") == [("baseline",)]
    run = _pytest_generated(baselined, matched.dsn)
    assert run.returncode == 0, run.stdout[-6000:]
    assert "superseded by V003" in run.stdout
