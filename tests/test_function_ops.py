"""CreateFunction and CreateTrigger (issue 13): what the round trips cannot see.

- a body with ``$$``, ``$dbdeploy$``, quotes, backslashes and non-ASCII text is stored byte for byte
  (``prosrc``) and the function runs (psql here; tests/test_psql_parity.py compares the executor's
  ``pg_get_functiondef`` with psql's for the golden and round-trip cases);
- a function that exists with the same definition is accepted and left by the rollback; one with another
  definition stops the forward, changing nothing;
- the rollback refuses, naming them, while objects this version did not create depend on the function;
- a trigger with another definition stops the forward; a same-named identical one is accepted and kept.
"""

from __future__ import annotations

from pathlib import Path

from dbdeploy import CreateFunction, CreateTrigger, Migration
from tests.bundles import write_bundles
from tests.pg import TestDatabase
from tests.roundtrip import catalog, expect_failure, log_status, run_sql_file

ODD_BODY = ("SELECT $$it's $dbdeploy$ a \\ backslash$$ || 'and ''quotes'' ' || E'\\t' || p_suffix"
            " -- trailing comment, ünïcödé\n")
TOUCH_BODY = "\nBEGIN\n    NEW.updated_at := pg_catalog.clock_timestamp();\n    RETURN NEW;\nEND\n"
DOCUMENTS = """
CREATE TABLE public.documents (id integer PRIMARY KEY, title text NOT NULL,
                               updated_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00');
INSERT INTO public.documents SELECT g, 'doc ' || g, '2024-01-01 00:00:00+00' FROM generate_series(1, 500) g;
"""


def _bundle(tmp_path: Path, *operations, version: str = "001"):
    return write_bundles([Migration(version=version, name="code", operations=list(operations))], tmp_path)[version]


def _touch(**overrides) -> CreateFunction:
    return CreateFunction(**{**dict(name="public.touch_updated_at", returns="trigger", language="plpgsql",
                                    body=TOUCH_BODY), **overrides})


def _trigger(**overrides) -> CreateTrigger:
    return CreateTrigger(**{**dict(table="public.documents", name="documents_touch",
                                   function="public.touch_updated_at", timing="BEFORE", events=["UPDATE"]),
                            **overrides})


def test_odd_body_is_kept_byte_for_byte_and_runs(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    op = CreateFunction(name="public.odd", args=[("p_suffix", "text")], returns="text", language="sql",
                        volatility="immutable", body=ODD_BODY)
    run_sql_file(db, _bundle(tmp_path, op).forward)
    assert conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'public.odd(text)'::regprocedure").fetchone()[0] \
        == ODD_BODY
    assert conn.execute("SELECT public.odd('!')").fetchone()[0] == "it's $dbdeploy$ a \\ backslashand 'quotes' \t!"


def test_identical_function_is_accepted_and_left_by_the_rollback(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
               "$body$" + TOUCH_BODY + "$body$")
    s0 = catalog(conn)
    bundle = _bundle(tmp_path, _touch())
    proc = run_sql_file(db, bundle.forward)
    assert "already exists as the spec defines it" in proc.stdout + proc.stderr
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0, "the rollback dropped a function the version did not create"


def test_function_with_another_definition_stops_the_forward(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RETURN NEW; END$$")
    s0 = catalog(conn)
    expect_failure(db, _bundle(tmp_path, _touch()).forward,
                   "function public.touch_updated_at() already exists with another definition")
    assert catalog(conn) == s0
    assert log_status(conn, "001") != "completed"


def test_rollback_refuses_while_a_foreign_trigger_uses_the_function(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCUMENTS)
    bundle = _bundle(tmp_path, _touch())
    run_sql_file(db, bundle.forward)
    db.execute("CREATE TRIGGER documents_by_hand BEFORE UPDATE ON public.documents FOR EACH ROW"
               " EXECUTE FUNCTION public.touch_updated_at()")
    s1 = catalog(conn)
    expect_failure(db, bundle.rollback, "cannot drop function public.touch_updated_at()",
                   "trigger documents_by_hand on table public.documents")
    assert catalog(conn) == s1, "a refused rollback changed something"
    db.execute("DROP TRIGGER documents_by_hand ON public.documents")
    run_sql_file(db, bundle.rollback)
    assert conn.execute("SELECT to_regprocedure('public.touch_updated_at()')").fetchone()[0] is None


def test_trigger_fires_after_forward_and_not_after_rollback(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCUMENTS)
    bundle = _bundle(tmp_path, _touch(), _trigger(when="NEW.title IS DISTINCT FROM OLD.title"))
    run_sql_file(db, bundle.forward)
    db.execute("UPDATE public.documents SET title = title || '!' WHERE id <= 10")
    db.execute("UPDATE public.documents SET title = title WHERE id BETWEEN 11 AND 20")   # WHEN false: not touched
    (touched,) = conn.execute("SELECT count(*) FROM public.documents"
                              " WHERE updated_at > '2024-01-01 00:00:00+00'").fetchone()
    assert touched == 10
    run_sql_file(db, bundle.rollback)
    db.execute("UPDATE public.documents SET updated_at = '2024-01-01 00:00:00+00'")
    db.execute("UPDATE public.documents SET title = title || '?' WHERE id <= 10")
    assert conn.execute("SELECT count(*) FROM public.documents"
                        " WHERE updated_at > '2024-01-01 00:00:00+00'").fetchone()[0] == 0


def test_trigger_with_another_definition_stops_and_an_identical_one_is_kept(fresh_db: TestDatabase,
                                                                             tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCUMENTS)
    db.execute("CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
               "$body$" + TOUCH_BODY + "$body$")
    db.execute("CREATE TRIGGER documents_touch AFTER UPDATE ON public.documents FOR EACH ROW"
               " EXECUTE FUNCTION public.touch_updated_at()")
    s0 = catalog(conn)
    expect_failure(db, _bundle(tmp_path / "a", _trigger()).forward,
                   "trigger documents_touch on public.documents already exists with another definition")
    assert catalog(conn) == s0
    db.execute("DROP TRIGGER documents_touch ON public.documents;"
               " CREATE TRIGGER documents_touch BEFORE UPDATE ON public.documents FOR EACH ROW"
               " EXECUTE FUNCTION public.touch_updated_at()")
    s0 = catalog(conn)
    bundle = _bundle(tmp_path / "b", _trigger())
    run_sql_file(db, bundle.forward)
    assert catalog(conn) == s0
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0, "the rollback dropped a trigger the version did not create"


# -- ReplaceFunction --------------------------------------------------------------------------------

def _retouch(**overrides):
    from dbdeploy import ReplaceFunction
    return ReplaceFunction(**{**dict(name="public.touch_updated_at", returns="trigger", language="plpgsql",
                                     body=TOUCH_BODY), **overrides})


def test_replace_refuses_a_return_type_change(fresh_db: TestDatabase, tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE FUNCTION public.answer() RETURNS integer LANGUAGE sql AS 'SELECT 42'")
    s0 = catalog(conn)
    from dbdeploy import ReplaceFunction
    op = ReplaceFunction(name="public.answer", returns="text", language="sql", body="SELECT '42'")
    expect_failure(db, _bundle(tmp_path, op).forward, "function public.answer() returns another type than text",
                   "PostgreSQL cannot change a function's return type", "integer")
    assert catalog(conn) == s0


def test_replace_rollback_refuses_when_the_saved_definition_is_missing(fresh_db: TestDatabase,
                                                                       tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    db.execute("CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RETURN NEW; END$$")
    bundle = _bundle(tmp_path, _retouch())
    run_sql_file(db, bundle.forward)
    db.execute("DELETE FROM dbdeploy_backup.replaced_functions")
    s1 = catalog(conn)
    expect_failure(db, bundle.rollback, "saved in dbdeploy_backup.replaced_functions, is missing")
    assert catalog(conn) == s1


def test_replace_of_a_missing_function_creates_it_and_the_rollback_drops_it(fresh_db: TestDatabase,
                                                                            tmp_path: Path) -> None:
    db, conn = fresh_db, fresh_db.connect()
    s0 = catalog(conn)
    bundle = _bundle(tmp_path, _retouch())
    run_sql_file(db, bundle.forward)
    run_sql_file(db, bundle.forward)
    assert conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'public.touch_updated_at()'::regprocedure"
                        ).fetchone()[0] == TOUCH_BODY
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0


# -- DropFunction, DropTrigger ----------------------------------------------------------------------

def test_drop_function_refuses_while_a_trigger_uses_it_naming_it(fresh_db: TestDatabase, tmp_path: Path) -> None:
    from dbdeploy import DropFunction
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCUMENTS)
    db.execute("CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
               "$body$" + TOUCH_BODY + "$body$;"
               " CREATE TRIGGER documents_touch BEFORE UPDATE ON public.documents FOR EACH ROW"
               " EXECUTE FUNCTION public.touch_updated_at()")
    s0 = catalog(conn)
    expect_failure(db, _bundle(tmp_path, DropFunction(name="public.touch_updated_at")).forward,
                   "refusing to drop function public.touch_updated_at()",
                   "trigger documents_touch on table public.documents")
    assert catalog(conn) == s0


def test_drop_trigger_rollback_refuses_a_trigger_made_since(fresh_db: TestDatabase, tmp_path: Path) -> None:
    from dbdeploy import DropTrigger
    db, conn = fresh_db, fresh_db.connect()
    db.execute(DOCUMENTS)
    db.execute("CREATE FUNCTION public.touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS "
               "$body$" + TOUCH_BODY + "$body$;"
               " CREATE TRIGGER documents_touch BEFORE UPDATE ON public.documents FOR EACH ROW"
               " EXECUTE FUNCTION public.touch_updated_at()")
    s0 = catalog(conn)
    bundle = _bundle(tmp_path, DropTrigger(table="public.documents", name="documents_touch"))
    run_sql_file(db, bundle.forward)
    db.execute("CREATE TRIGGER documents_touch AFTER INSERT ON public.documents FOR EACH ROW"
               " EXECUTE FUNCTION public.touch_updated_at()")
    s1 = catalog(conn)
    expect_failure(db, bundle.rollback, "a trigger documents_touch on public.documents exists again")
    assert catalog(conn) == s1
    db.execute("DROP TRIGGER documents_touch ON public.documents")
    run_sql_file(db, bundle.rollback)
    assert catalog(conn) == s0


# -- dbdeploy test: every phase of specs using every code operation ---------------------------------

CODE_SPECS = {
    "V040_docs.py": '''
from dbdeploy import Column, CreateTable, Migration

migration = Migration(version="040", name="docs", operations=[
    CreateTable(table="public.docs", columns=[Column(name="id", type="bigint", nullable=False),
                                              Column(name="title", type="text", nullable=False),
                                              Column(name="updated_at", type="timestamptz")],
                primary_key=["id"]),
])
''',
    "V041_touch.py": '''
from dbdeploy import CreateFunction, CreateProcedure, CreateTrigger, Migration

migration = Migration(version="041", name="touch", operations=[
    CreateFunction(name="public.touch", returns="trigger", language="plpgsql",
                   body="BEGIN NEW.updated_at := pg_catalog.now(); RETURN NEW; END"),
    CreateTrigger(table="public.docs", name="docs_touch", function="public.touch", timing="BEFORE",
                  events=["INSERT", "UPDATE"]),
    CreateFunction(name="public.doc_count", returns="bigint", language="sql", volatility="stable",
                   security_definer=True, search_path="pg_catalog", body="SELECT count(*) FROM public.docs"),
    CreateProcedure(name="public.purge_docs", args=[("p_keep", "bigint")], language="plpgsql",
                    body="BEGIN DELETE FROM public.docs WHERE id > p_keep; END"),
])
''',
    "V042_retouch.py": '''
from dbdeploy import DropFunction, DropTrigger, Migration, ReplaceFunction

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

migration = Migration(version="042", name="retouch", operations=[
    ReplaceFunction(name="public.touch", returns="trigger", language="plpgsql",
                    body="BEGIN NEW.updated_at := pg_catalog.clock_timestamp(); RETURN NEW; END"),
    DropTrigger(table="public.docs", name="docs_touch"),
    DropFunction(name="public.doc_count"),
])
''',
}


def test_dbdeploy_test_passes_every_phase(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    """``dbdeploy test`` (each version applied then its generated tests, rolled back newest first then the
    rolled-back group, all applied again) passes on specs using every code operation."""
    from tests.executor_support import make_project, write_spec
    specs = tmp_path / "specs"
    for name, source in CODE_SPECS.items():
        write_spec(specs, name, source)
    project = make_project(tmp_path / "project", specs=specs)
    result = project.run("test", "--dsn", fresh_db_each.server.admin_dsn, "--plain", timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    for label in ("V040", "V041", "V042"):
        row = next(line for line in result.stdout.splitlines() if label in line and "pass" in line)
        assert row.count("pass") == 3, row
