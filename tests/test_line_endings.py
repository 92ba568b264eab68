"""Bundles checked out with CRLF line endings (issue 9, kind 10).

A checkout with git ``core.autocrlf=true`` (or an editor) turns every LF of the bundle files
into CRLF. That changes no step dbdeploy runs: apply, status, verify and rollback treat the
file with its CRLF turned back into LF — byte for byte the generated file, by its manifest's
sha256 — as the bundle; a file that differs in more than line endings is refused with a message
that names line endings and the fix. ``generate`` writes ``generated/.gitattributes`` (``* -text``)
so git leaves the bytes alone, and ``generate --check`` knows that file.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.executor_support import make_project, write_spec
from tests.pg import TestDatabase
from tests.test_examples import POPULATE

LOG = "SELECT version, status FROM migrations.migration_log ORDER BY version"


def to_crlf(folder: Path) -> int:
    """What git autocrlf does on checkout: every LF not already after a CR becomes CRLF."""
    changed = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != ".gitattributes":
            data = path.read_bytes()
            converted = b"\r\n".join(part.replace(b"\n", b"\r\n") for part in data.split(b"\r\n"))
            if converted != data:
                path.write_bytes(converted)
                changed += 1
    return changed


def to_lf(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n"))


def _status(project) -> dict[str, str]:
    result = project.run("status", "--env", "test", "--json")
    assert result.returncode == 0, result.stderr
    return {row["version"]: row["state"] for row in json.loads(result.stdout)}


def _apply_populated(project, db: TestDatabase) -> None:
    first = project.run("apply", "--env", "test", "--to", "001")
    assert first.returncode == 0, first.stderr
    db.execute(POPULATE)
    rest = project.run("apply", "--env", "test")
    assert rest.returncode == 0, rest.stderr


def test_crlf_checkout_applies_reports_verifies_and_rolls_back(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    project = make_project(tmp_path, fresh_db_each.dsn)
    assert to_crlf(project.generated) >= 15
    assert b"\r\n" in next(project.generated.glob("V002__*/V002__evolve*.sql")).read_bytes()
    _apply_populated(project, fresh_db_each)
    assert fresh_db_each.execute(LOG) == [("001", "completed"), ("002", "completed"), ("003", "completed")]
    assert _status(project) == {"001": "applied", "002": "applied", "003": "applied"}
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    again = project.run("apply", "--env", "test")
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    back = project.run("rollback", "--env", "test", "--to", "001")
    assert back.returncode == 0, back.stderr
    # V002's columns are gone again and the 12,000 events are all still there
    assert fresh_db_each.execute("SELECT count(*) FROM raw.site_tracking_events_r") == [(12000,)]
    assert fresh_db_each.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'raw.site_tracking_events_r'"
                                 "::regclass AND attname IN ('event_type', 'event_uuid')") == [(0,)]
    back = project.run("rollback", "--env", "test", "--to", "0")
    assert back.returncode == 0, back.stderr
    assert {s for _, s in fresh_db_each.execute(LOG)} == {"rolled_back"}


def test_applied_with_lf_then_checked_out_with_crlf(fresh_db: TestDatabase, tmp_path: Path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    _apply_populated(project, fresh_db)
    checksums = fresh_db.execute("SELECT version, checksum FROM migrations.migration_log ORDER BY version")
    to_crlf(project.generated)
    assert _status(project) == {"001": "applied", "002": "applied", "003": "applied"}
    assert project.run("verify", "--env", "test").returncode == 0
    again = project.run("apply", "--env", "test")
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    assert fresh_db.execute("SELECT version, checksum FROM migrations.migration_log ORDER BY version") == checksums
    back = project.run("rollback", "--env", "test", "--to", "001")
    assert back.returncode == 0, back.stderr
    assert fresh_db.execute(LOG) == [("001", "completed"), ("002", "rolled_back"), ("003", "rolled_back")]


def test_applied_with_crlf_then_checked_out_with_lf(fresh_db: TestDatabase, tmp_path: Path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    to_crlf(project.generated)
    _apply_populated(project, fresh_db)
    to_lf(project.generated)
    assert _status(project) == {"001": "applied", "002": "applied", "003": "applied"}
    assert project.run("verify", "--env", "test").returncode == 0
    back = project.run("rollback", "--env", "test", "--to", "0")
    assert back.returncode == 0, back.stderr
    assert {s for _, s in fresh_db.execute(LOG)} == {"rolled_back"}


def test_crlf_file_that_was_also_edited_is_refused_naming_line_endings(fresh_db: TestDatabase,
                                                                        tmp_path: Path) -> None:
    project = make_project(tmp_path, fresh_db.dsn)
    forward = next(project.generated.glob("V001__*/V001__create*.sql"))
    forward.write_bytes(forward.read_bytes().replace(b"BEGIN;", b"BEGIN; -- edited", 1))
    to_crlf(project.generated)
    result = project.run("apply", "--env", "test")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "CRLF" in result.stderr and ".gitattributes" in result.stderr and forward.name in result.stderr
    assert "Traceback" not in result.stderr
    assert fresh_db.execute("SELECT to_regnamespace('raw') IS NULL") == [(True,)]   # nothing ran
    assert _status(project)["001"] == "edited"
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 1 and forward.name in verify.stderr


def test_generated_crlf_inside_raw_sql_survives_and_a_conversion_on_top_is_named(fresh_db: TestDatabase,
                                                                                  tmp_path: Path) -> None:
    """A RawSQL body with its own CRLF is generated as is (psql and dbdeploy run it the same); a
    later CRLF conversion of that file cannot be undone exactly, and the refusal says why."""
    specs = tmp_path / "specs"
    write_spec(specs, "V001_crlf.py", "from dbdeploy import Migration, RawSQL\n"
               "m = Migration(version='001', name='crlf', operations=[RawSQL(\n"
               "    forward=\"CREATE VIEW public.v_crlf AS SELECT 'a\\r\\nb'::text AS t\",\n"
               "    rollback='DROP VIEW public.v_crlf')])\n")
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=specs)
    forward = next(project.generated.glob("V001__*/V001__crlf.sql"))
    assert b"'a\r\nb'" in forward.read_bytes()
    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stderr
    assert fresh_db.execute("SELECT t FROM public.v_crlf") == [("a\r\nb",)]
    back = project.run("rollback", "--env", "test", "--to", "0")
    assert back.returncode == 0, back.stderr
    to_crlf(project.generated)
    refused = project.run("apply", "--env", "test")
    assert refused.returncode == 3 and "CRLF" in refused.stderr, refused.stderr


def test_generate_writes_gitattributes_and_check_knows_it(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    attributes = project.generated / ".gitattributes"
    assert attributes.read_text().splitlines()[-1] == "* -text"
    assert project.run("generate", "--check").returncode == 0
    attributes.unlink()
    missing = project.run("generate", "--check")
    assert missing.returncode == 1 and "missing: .gitattributes" in missing.stderr, missing.stderr
    assert project.run("generate").returncode == 0 and attributes.is_file()
    to_crlf(project.generated)
    stale = project.run("generate", "--check")
    assert stale.returncode == 1 and "only its line endings differ (CRLF)" in stale.stderr, stale.stderr
