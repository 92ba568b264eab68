"""Security properties of generated SQL: squawk-clean, and immune to search_path hijacking."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SQUAWK = shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")


def _generated_sql() -> list[Path]:
    files = sorted(REPO.glob("generated/*/V*.sql")) + sorted(REPO.glob("tests/golden/*/V*.sql"))
    assert len(files) >= 30, files
    return files


def test_squawk_finds_nothing_in_generated_sql() -> None:
    """Every forward and rollback file of the examples and of the golden test specs, with the
    checked-in .squawk.toml (each exclusion there carries its reason)."""
    proc = subprocess.run([SQUAWK, "--reporter", "gcc", *map(str, _generated_sql())], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Found 0 issues" in proc.stdout + proc.stderr or not proc.stdout.strip(), proc.stdout


def test_squawk_would_flag_the_naive_forms(tmp_path) -> None:
    """The check is live: the unsafe forms dbdeploy avoids are findings with the same config."""
    naive = tmp_path / "naive.sql"
    naive.write_text("CREATE INDEX t_a_idx ON public.t (a);\n"
                     "ALTER TABLE public.t ADD CONSTRAINT t_fk FOREIGN KEY (a) REFERENCES public.p (id);\n"
                     "ALTER TABLE public.t ALTER COLUMN a SET NOT NULL;\n")
    proc = subprocess.run([SQUAWK, "--reporter", "gcc", str(naive)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    for rule in ("require-concurrent-index-creation", "adding-foreign-key-constraint", "adding-not-nullable-field"):
        assert rule in out, out


HOSTILE = """
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01 00:00:00+00'::timestamptz $$;
CREATE FUNCTION evil.hijacked_arrow(jsonb, text) RETURNS text LANGUAGE sql AS $$ SELECT 'hijacked' $$;
CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.hijacked_arrow);
"""


@pytest.mark.parametrize("via", ["psql", "executor"])
def test_a_hostile_schema_first_in_search_path_cannot_hijack_built_ins(fresh_db, tmp_path, via: str) -> None:
    from tests.executor_support import make_project

    fresh_db.execute(HOSTILE)
    fresh_db.execute(f'ALTER DATABASE "{fresh_db.name}" SET search_path = evil, pg_catalog, public')
    # The hostile objects really would win without dbdeploy's own search_path:
    probe = fresh_db.connect()
    assert probe.execute("SELECT now() = '2000-01-01 00:00:00+00'::timestamptz").fetchone() == (True,)
    assert probe.execute("""SELECT '{"a": "b"}'::jsonb ->> 'a'""").fetchone() == ("hijacked",)
    probe.close()

    bundles = sorted(REPO.glob("generated/V00[12]__*"))
    if via == "psql":
        fresh_db.psql_file(next(bundles[0].glob("V001__create*.sql")))
        fresh_db.execute("INSERT INTO raw.site_tracking_events_r (raw_payload)"
                         " SELECT jsonb_build_object('event_type', 'view') FROM generate_series(1, 10)")
        fresh_db.psql_file(next(bundles[1].glob("V002__evolve*.sql")))
    else:
        project = make_project(tmp_path, fresh_db.dsn)
        assert project.run("apply", "--env", "test", "--to", "1").returncode == 0
        fresh_db.execute("INSERT INTO raw.site_tracking_events_r (raw_payload)"
                         " SELECT jsonb_build_object('event_type', 'view') FROM generate_series(1, 10)")
        result = project.run("apply", "--env", "test", "--to", "2")
        assert result.returncode == 0, result.stderr

    default = fresh_db.execute(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a"
        " ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        " WHERE d.adrelid = 'raw.site_tracking_events_r'::regclass AND a.attname = 'received_timestamp'")[0][0]
    assert "evil" not in default
    rows = fresh_db.execute("SELECT count(*) FROM raw.site_tracking_events_r"
                            " WHERE received_timestamp = '2000-01-01 00:00:00+00' OR event_type = 'hijacked'")
    assert rows == [(0,)]
    assert fresh_db.execute("SELECT DISTINCT event_type FROM raw.site_tracking_events_r") == [("view",)]


def test_history_and_backup_schemas_are_closed_to_public(fresh_db) -> None:
    fresh_db.psql_file(next(REPO.glob("generated/V001__*/V001__create*.sql")))
    rows = fresh_db.execute(
        "SELECT nspname, has_schema_privilege('public', oid, 'USAGE'), has_schema_privilege('public', oid, 'CREATE')"
        " FROM pg_namespace WHERE nspname IN ('migrations', 'dbdeploy_backup') ORDER BY 1")
    assert rows == [("dbdeploy_backup", False, False), ("migrations", False, False)]
