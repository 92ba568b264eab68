"""The executor runs exactly what ``psql -v ON_ERROR_STOP=1 -f`` runs (issue 9, kind 4).

Every bundle is applied twice on the same server (PG 15 and the embedded PG 16): with the
executor (``Deployment.apply``/``rollback``, what ``dbdeploy apply`` runs) on one fresh database
and with ``psql -f`` on another, and then the two databases are compared: catalog
(tests/catalog.py), ``pg_get_functiondef`` of every function, every table's rows, and the
migration log. The bundles are the golden cases, the round-trip cases with their rows, the
committed examples on a populated database, and a corpus of RawSQL bodies that psql lexes in
ways a line-based splitter gets wrong. ``psql -e`` echoes every statement it sends; the corpus
also checks that those are exactly the statements dbdeploy's splitter finds.

Both ways run with ``batch_time`` 0 (the executor's environment, and ``dbdeploy.batch_time`` in
psql's session through PGOPTIONS): every batch has ``batch_size`` rows, so the cursor tables'
batch counts compare equal; how batches adapt to time is tested in tests/test_batch_time.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dbdeploy import Column, CreateTable, Migration, RawSQL
from dbdeploy.errors import SpecError
from dbdeploy.executor.bundles import parse_script
from dbdeploy.executor.config import Config, Environment
from dbdeploy.executor.deploy import Deployment
from dbdeploy.sql import psql as psql_split
from tests import catalog
from tests.bundles import write_bundles
from tests.golden_cases import BASE
from tests.golden_cases import CASES as GOLDEN_CASES
from tests.pg import TestDatabase, temporary_database
from tests.test_examples import POPULATE as EXAMPLES_POPULATE
from tests.test_ops_roundtrip import CASES as ROUND_TRIP_CASES

# The suite runs this module on the primary server (the round trips in tests/test_ops_roundtrip.py and the
# step-lock checks run on every server); DBDEPLOY_FULL=1 runs it on every server (README, "Testing").
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

REPO = Path(__file__).resolve().parent.parent
EXECUTOR_ONLY = ("migration_events", "performance_log", "migration_scripts")   # the executor's extra history
VOLATILE_TYPES = ("uuid", "timestamp without time zone", "timestamp with time zone")


# --- comparing two databases ----------------------------------------------------------------

def _state(db: TestDatabase) -> dict:
    """Catalog, function definitions, rows of every table (volatile columns left out) and the log."""
    conn = db.connect()
    try:
        functions = dict(conn.execute(
            "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p"
            " JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"
            " AND p.prokind IN ('f', 'p')").fetchall())
        tables = conn.execute(
            "SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_%%' AND NOT (n.nspname = 'migrations' AND c.relname = ANY(%s))",
            [list(EXECUTOR_ONLY)]).fetchall()
        rows = {}
        for oid, schema, name in tables:
            volatile = [r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped"
                " AND format_type(atttypid, NULL) = ANY(%s)", [oid, list(VOLATILE_TYPES)]).fetchall()]
            if schema == "migrations" and name == "migration_log":
                volatile += ["duration_ms", "environment", "host", "dbdeploy_version", "rows_affected", "notes"]
            query = (f'SELECT (to_jsonb(t) - %s::text[])::text FROM "{schema}"."{name}" AS t')  # names from catalog
            rows[f"{schema}.{name}"] = sorted(r[0] for r in conn.execute(query, [volatile]).fetchall())
        snapshot = catalog.snapshot(conn, exclude_schemas=())
        executor_only = tuple(f"migrations.{table}" for table in EXECUTOR_ONLY)
        for section in (v for v in snapshot.values() if isinstance(v, dict)):
            for key in [k for k, v in section.items() if k.startswith(executor_only) or (isinstance(v, dict) and str(
                    v.get("table") or v.get("owned_by") or "").startswith(executor_only))]:
                del section[key]
        state = {"catalog": snapshot, "functions": functions, "rows": rows}
        # backups made by a rollback are named after the time they were made
        return json.loads(re.sub(r"_\d{8}_\d{6}_\d{6}", "_<time>", json.dumps(state, sort_keys=True, default=str)))
    finally:
        conn.close()


def _assert_same(by_executor: dict, by_psql: dict, what: str) -> None:
    assert by_executor == by_psql, f"{what}: executor (left) and psql (right) differ:\n" + catalog.diff(
        by_executor, by_psql)[:6000]


@pytest.fixture(autouse=True)
def _fixed_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """psql sessions run with dbdeploy.batch_time = 0, like the executor below (see the docstring)."""
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=0")


def _deployment(generated: Path, db: TestDatabase) -> Deployment:
    env = Environment(name="test", dsn=db.dsn, lock_timeout="5s", retries=2, batch_time="0")
    config = Config(root=generated.parent, specs=generated.parent / "specs", generated=generated,
                    environments={"test": env})
    return Deployment(config=config, env=env, dsn=db.dsn)


def _psql_echo(db: TestDatabase, path: Path) -> str:
    """Run ``path`` with psql, echoing every statement it sends (``-e``); returns the echo."""
    return db.psql("-e", "-f", str(path)).stdout


def _round_trip_both_ways(psql_db: TestDatabase, tmp_path: Path, migrations: list[Migration], *,
                          setup: str = "", populate: str = "", database_setting: str = "") -> tuple[dict, dict]:
    """Earlier migrations, populate, then the last migration forward and back, both ways.

    Returns the bundles and the psql ``-e`` echo of each file run, keyed by file path."""
    bundles = write_bundles(migrations, tmp_path / "generated")
    versions = sorted(bundles, key=int)
    echoes: dict[Path, str] = {}
    with temporary_database(psql_db.server) as exec_db:
        deployment = _deployment(tmp_path / "generated", exec_db)
        for db in (psql_db, exec_db):
            if database_setting:   # for the connections opened after this one (psql, the executor)
                db.execute(f'ALTER DATABASE "{db.name}" SET {database_setting}')
            if setup:
                db.execute(setup)
        for version in versions[:-1]:
            deployment.apply(to=version)
            echoes[bundles[version].forward] = _psql_echo(psql_db, bundles[version].forward)
        for db in (psql_db, exec_db):
            if populate:
                db.execute(populate)
        _assert_same(_state(exec_db), _state(psql_db), "before the migration")
        last = versions[-1]
        deployment.apply()
        echoes[bundles[last].forward] = _psql_echo(psql_db, bundles[last].forward)
        _assert_same(_state(exec_db), _state(psql_db), f"after V{last} forward")
        deployment.rollback(to=versions[-2] if len(versions) > 1 else "0")
        echoes[bundles[last].rollback] = _psql_echo(psql_db, bundles[last].rollback)
        _assert_same(_state(exec_db), _state(psql_db), f"after V{last} rollback")
    return bundles, echoes


def _assert_echo_is_split(echoes: dict[Path, str]) -> None:
    """psql -e printed exactly the statements dbdeploy's splitter finds, in order (nothing else)."""
    for path, echo in echoes.items():
        text = path.read_text()
        sent = [s.text for s in psql_split.statements(text)]
        assert echo == "".join(f"{s}\n" for s in sent), f"{path.name}: psql sent other statements than the splitter"


# --- golden bundles, round-trip cases, examples -------------------------------------------------

# What the golden cases expect to exist, with rows; shop.orders (golden_cases.BASE) gets rows after V001.
GOLDEN_SETUP = {
    # the option cases reference public.customers, which exists before them
    "create_table_options": "CREATE TABLE public.customers (id bigint PRIMARY KEY);"
                            " INSERT INTO public.customers SELECT generate_series(1, 50);",
    "constraint_options": "CREATE SCHEMA IF NOT EXISTS shop; CREATE TABLE public.customers (id bigint PRIMARY KEY);"
                          " INSERT INTO public.customers SELECT generate_series(1, 50);",
    "add_foreign_key": "CREATE TABLE public.customers (id bigint PRIMARY KEY);"
                       " INSERT INTO public.customers SELECT generate_series(1, 50);",
    "backfill_composite_key": "CREATE TABLE public.events (tenant_id int, event_id int, kind text,"
                              " PRIMARY KEY (tenant_id, event_id));"
                              " INSERT INTO public.events SELECT g % 7, g, CASE WHEN g % 3 = 0 THEN 'view' END"
                              " FROM generate_series(1, 2000) g;",
    "raw_sql_concurrently": "CREATE TABLE public.t (x int); INSERT INTO public.t SELECT generate_series(1, 1000);",
    "require_extension": "CREATE EXTENSION IF NOT EXISTS pgcrypto;",
    "set_not_null": "CREATE SCHEMA shop; CREATE TABLE shop.customers (id bigint PRIMARY KEY, name text);"
                    " INSERT INTO shop.customers SELECT g, 'customer ' || g FROM generate_series(1, 1000) g;",
    "drop_constraint_preexisting": "CREATE TABLE public.customers (id bigint PRIMARY KEY);"
                                   " INSERT INTO public.customers SELECT generate_series(1, 50);",
    "add_primary_key": "CREATE TABLE public.t (x int); INSERT INTO public.t SELECT generate_series(1, 1000);",
}
ORDERS_ROWS = ("INSERT INTO shop.orders (customer_id, status, total, note) SELECT g % 50 + 1,"
               " CASE WHEN g % 4 = 0 THEN 'done' ELSE 'new' END, g * 1.5,"
               " CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END FROM generate_series(1, 1000) g;")


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_bundle_runs_the_same_under_executor_and_psql(case: str, fresh_db_each: TestDatabase,
                                                               tmp_path: Path) -> None:
    migrations = GOLDEN_CASES[case]
    available = {r[0] for r in fresh_db_each.execute("SELECT name FROM pg_available_extensions")}
    if case == "require_extension" and not {"pgcrypto", "citext"} <= available:
        pytest.skip(f"{fresh_db_each.server.name} does not ship pgcrypto and citext")
    populate = ORDERS_ROWS if len(migrations) > 1 and migrations[0] is BASE else ""
    _, echoes = _round_trip_both_ways(fresh_db_each, tmp_path, migrations, populate=populate,
                                      setup=GOLDEN_SETUP.get(case, "CREATE SCHEMA IF NOT EXISTS shop;"))
    _assert_echo_is_split(echoes)


@pytest.mark.parametrize("case", ROUND_TRIP_CASES, ids=[c.id for c in ROUND_TRIP_CASES])
def test_round_trip_case_with_rows_runs_the_same_under_executor_and_psql(case, fresh_db_each: TestDatabase,
                                                                         tmp_path: Path) -> None:
    conn = fresh_db_each.connect()
    migrations = case.migrations(conn) if callable(case.migrations) else case.migrations
    _round_trip_both_ways(fresh_db_each, tmp_path, migrations, setup=case.setup, populate=case.populate)


def test_example_bundles_run_the_same_under_executor_and_psql(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    generated = REPO / "generated"
    folders = sorted(p for p in generated.iterdir() if p.is_dir())
    forwards = [next(p for p in f.glob("V*.sql") if "__rollback_" not in p.name) for f in folders]
    rollbacks = [next(f.glob("V*__rollback_*.sql")) for f in folders]
    with temporary_database(fresh_db_each.server) as exec_db:
        deployment = _deployment(generated, exec_db)
        deployment.apply(to="001")
        fresh_db_each.psql_file(forwards[0])
        for db in (fresh_db_each, exec_db):
            db.execute(EXAMPLES_POPULATE)
        deployment.apply()
        for forward in forwards[1:]:
            fresh_db_each.psql_file(forward)
        _assert_same(_state(exec_db), _state(fresh_db_each), "after every example forward")
        deployment.rollback(to="0")
        for rollback in reversed(rollbacks):
            fresh_db_each.psql_file(rollback)
        _assert_same(_state(exec_db), _state(fresh_db_each), "after every example rollback")


# --- RawSQL corpus ------------------------------------------------------------------------------

NOTES = CreateTable(table="public.notes", columns=[
    Column(name="id", type="bigint", nullable=False), Column(name="body", type="text"),
    Column(name="extra", type="text")], primary_key=["id"])
NOTES_ROWS = ("INSERT INTO public.notes SELECT g, 'note ' || g || CASE WHEN g % 5 = 0 THEN E' \\\\ -- x' ELSE '' END,"
              " CASE WHEN g % 3 = 0 THEN NULL ELSE 'e' || g END FROM generate_series(1, 800) g")

MARKER = "-- dbdeploy:step 9 raw_sql tx=step lock=ACCESS EXCLUSIVE target=-"

# (name, forward, rollback): each a RawSQL body that a line- or regex-based splitter runs differently.
CORPUS = [
    ("comment_lines_in_function_body", """
CREATE FUNCTION public.f_comments() RETURNS text LANGUAGE plpgsql AS $$
-- a comment line at the start of the body
BEGIN
    -- a comment line inside; with a semicolon
    RETURN 'x'; -- a trailing comment
END
$$;""", "DROP FUNCTION public.f_comments();"),
    ("nested_dollar_quotes_with_tags", """
CREATE FUNCTION public.f_nested() RETURNS text LANGUAGE plpgsql AS $outer$
DECLARE
    v text;
BEGIN
    EXECUTE $q$SELECT '-- not a comment; ' || $inner$-- nor this$inner$$q$ INTO v;
    RETURN v; -- a $q$ tag here does not end the outer quote
END
$outer$;""", "DROP FUNCTION public.f_nested();"),
    ("dashes_and_semicolons_in_strings", """
INSERT INTO public.notes (id, body) VALUES (10001, 'a -- not a comment; still the string'),
(10002, '
-- a line of a string literal;
');""", "DELETE FROM public.notes WHERE id IN (10001, 10002);"),
    ("escape_strings", r"""
INSERT INTO public.notes (id, body, extra) VALUES (10003, E'it\'s a \\ backslash\n-- line two; ok', E'\x41\t\\\'');
UPDATE public.notes SET extra = E'\\' || coalesce(extra, E'\'') WHERE id % 7 = 0; -- rows the table holds""",
     r"UPDATE public.notes SET extra = nullif(substr(extra, 2), E'''') WHERE id % 7 = 0;"
     " DELETE FROM public.notes WHERE id = 10003;"),
    ("nested_block_comments", """
/* outer /* inner; -- */ still a comment; ' " $$ */ INSERT INTO public.notes (id, body) VALUES (10004, 'after /* */');
CREATE VIEW public.v_notes AS /* kept /* nested */ */ SELECT id, body FROM public.notes WHERE id > 10000;""",
     "DROP VIEW public.v_notes; DELETE FROM public.notes WHERE id = 10004;"),
    ("standard_conforming_strings", r"""
INSERT INTO public.notes (id, body) VALUES (10005, 'C:\temp\-- a path, not a comment; \');""",
     "DELETE FROM public.notes WHERE id = 10005;"),
    ("copy_from_stdin_text", "COPY public.notes (id, body, extra) FROM STDIN;\n"
     "10006\ttab\\there; -- not SQL\t\\N\n"
     "10007\tbackslash \\\\ and 'quote' and $$\tx\\ty\n"
     "10008\t\\N\tline\\nbreak\n"
     "\\.\n", "DELETE FROM public.notes WHERE id BETWEEN 10006 AND 10008;"),
    ("copy_from_stdin_csv", "COPY public.notes (id, body, extra) FROM STDIN WITH (FORMAT csv);\n"
     '10009,"comma, ""quoted"" -- text; here",\n'
     "10010,,plain\n"
     "\\.\n"
     "UPDATE public.notes SET extra = 'after copy' WHERE id = 10010;",
     "DELETE FROM public.notes WHERE id IN (10009, 10010);"),
    ("marker_lookalike_in_string_and_body", f"""
INSERT INTO public.notes (id, body) VALUES (10011, '
{MARKER}
-- dbdeploy:batch-begin
');
CREATE FUNCTION public.f_marker() RETURNS text LANGUAGE sql AS $$
{MARKER}
SELECT 'marker'
$$;
DO $$
BEGIN
    -- dbdeploy:batch-begin
    PERFORM 1;
    -- dbdeploy:batch-end
END
$$;""", "DROP FUNCTION public.f_marker(); DELETE FROM public.notes WHERE id = 10011;"),
    ("unicode", """
-- Ünïcödé comment — ✓
INSERT INTO public.notes (id, body) VALUES (10012, 'héllo wörld — ✓ 日本語 😀'), (10013, U&'d\\0061t\\+000061');
COMMENT ON TABLE public.notes IS 'Notizen — 笔记';""",
     "COMMENT ON TABLE public.notes IS NULL; DELETE FROM public.notes WHERE id IN (10012, 10013);"),
    ("crlf_line_endings", "INSERT INTO public.notes (id, body) VALUES (10014, 'line one\r\n-- line two\r\n');\r\n"
     "CREATE FUNCTION public.f_crlf() RETURNS int LANGUAGE plpgsql AS $$\r\nBEGIN\r\n    -- comment\r\n"
     "    RETURN 1;\r\nEND\r\n$$;\r\n",
     "DROP FUNCTION public.f_crlf();\r\nDELETE FROM public.notes WHERE id = 10014;\r\n"),
    ("begin_atomic_with_case", """
CREATE FUNCTION public.f_atomic(a int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
    SELECT CASE WHEN a > 0 THEN a + 1 ELSE 0 END; -- a semicolon inside BEGIN ATOMIC
END;""", "DROP FUNCTION public.f_atomic(int);"),
    ("trailing_comment_without_semicolon", """
UPDATE public.notes SET body = body || ';' WHERE id % 11 = 0 -- no semicolon after this comment""",
     "UPDATE public.notes SET body = left(body, -1) WHERE id % 11 = 0"),
    ("dollar_quote_with_quotes_and_backslash", r"""
INSERT INTO public.notes (id, body) VALUES (10015, $$it's; a \ backslash -- and dashes$$),
(10016, $tag$ $$ inside $tag$);""", "DELETE FROM public.notes WHERE id IN (10015, 10016);"),
    ("apostrophes_in_comments", """
-- don't stop here
/* it's a comment; */
INSERT INTO public.notes (id, body) VALUES (10017, 'x'); -- it's done""",
     "DELETE FROM public.notes WHERE id = 10017; /* isn't it */"),
    ("copy_end_lookalike_in_string", """
INSERT INTO public.notes (id, body) VALUES (10018, '
\\.
');""", "DELETE FROM public.notes WHERE id = 10018;"),
    ("assignments_casts_and_slices", """
CREATE FUNCTION public.f_slice(a int[]) RETURNS int[] LANGUAGE plpgsql AS $$
DECLARE r int[];
BEGIN
    r := a[1:2]; -- psql never interpolates inside a dollar quote
    RETURN r;
END
$$;
INSERT INTO public.notes (id, body) SELECT 10019, (ARRAY['a', 'b', 'c'])[2: 3]::text;""",
     "DROP FUNCTION public.f_slice(int[]); DELETE FROM public.notes WHERE id = 10019;"),
    ("do_block_with_comments_and_dynamic_sql", """
DO $do$
BEGIN
    -- insert through dynamic SQL; the comment is part of the body
    EXECUTE format('INSERT INTO public.notes (id, body) VALUES (%s, %L)', 10020, '-- dyn; ''q''');
END
$do$;""", "DELETE FROM public.notes WHERE id = 10020;"),
]


def _corpus_migrations() -> list[Migration]:
    ops = [RawSQL(forward=forward, rollback=rollback) for _, forward, rollback in CORPUS]
    return [Migration(version="001", name="notes", operations=[NOTES]),
            Migration(version="002", name="raw_corpus", operations=ops)]


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 15 and len({name for name, _, _ in CORPUS}) == len(CORPUS)


def test_raw_sql_corpus_runs_the_same_under_executor_and_psql(fresh_db_each: TestDatabase, tmp_path: Path) -> None:
    # standard_conforming_strings off for the database: the bundle's own SET makes psql lex (and the
    # server read) 'C:\temp\' the way dbdeploy's lexer does, whatever the server's default.
    bundles, echoes = _round_trip_both_ways(fresh_db_each, tmp_path, _corpus_migrations(), populate=NOTES_ROWS,
                                            database_setting="standard_conforming_strings = off")
    _assert_echo_is_split(echoes)
    forward = parse_script(bundles["002"].forward.read_text())
    assert [s.kind for s in forward.steps] == ["raw_sql"] * len(CORPUS), "a marker lookalike split a step"
    copies = [s for step in forward.steps for s in step.statements if getattr(s, "copy_data", None)]
    assert len(copies) == 2 and "10007\tbackslash \\\\ and 'quote'" in copies[0].copy_data


def test_corpus_function_bodies_keep_their_comment_lines(fresh_db: TestDatabase, tmp_path: Path) -> None:
    """The fault itself: a `--` line inside a dollar-quoted body reaches the server."""
    bundles = write_bundles(_corpus_migrations(), tmp_path / "generated")
    _deployment(tmp_path / "generated", fresh_db).apply()
    body = fresh_db.execute("SELECT prosrc FROM pg_proc WHERE proname = 'f_comments'")[0][0]
    assert "-- a comment line inside; with a semicolon" in body
    crlf = fresh_db.execute("SELECT prosrc FROM pg_proc WHERE proname = 'f_crlf'")[0][0]
    assert "\r\n    -- comment\r\n" in crlf
    assert fresh_db.execute("SELECT body FROM public.notes WHERE id = 10002") == [(
        "\n-- a line of a string literal;\n",)]
    assert fresh_db.execute("SELECT body, extra FROM public.notes WHERE id = 10006") == [(
        "tab\there; -- not SQL", None)]
    assert bundles["002"].forward.is_file()


# --- what psql would run differently is refused ---------------------------------------------------

@pytest.mark.parametrize(("body", "expected"), [
    ("\\set x 1\nSELECT 1", "meta-command"),
    ("SELECT 1;\n\\gexec", "meta-command"),
    ("\\copy public.notes FROM 'x.csv'", "meta-command"),
    ("SELECT :foo", "psql variable"),
    ("SELECT :'name'", "psql variable"),
    ('SELECT :"name"', "psql variable"),
    ("SELECT (ARRAY[1,2,3])[1:2]", "psql variable"),
    ("COPY public.notes FROM STDIN;\n1\tx\tx\n", "exactly \\."),
    ("COPY public.notes FROM STDIN; SELECT 1;\n1\tx\tx\n\\.\n", "same line"),
    ("SET standard_conforming_strings = off", "standard_conforming_strings"),
    ("SET client_encoding = 'LATIN1'", "client_encoding"),
    ("SELECT 'unterminated", "unterminated"),
])
def test_raw_sql_that_psql_runs_differently_is_refused_at_generate(body: str, expected: str) -> None:
    with pytest.raises(Exception) as caught:
        RawSQL(forward=body, rollback="SELECT 1")
    assert expected in str(caught.value) and "fix:" in str(caught.value), str(caught.value)


def test_generate_names_file_field_and_fix_for_a_psql_meta_command(tmp_path: Path) -> None:
    from tests.executor_support import make_project, write_spec

    specs = tmp_path / "specs"
    write_spec(specs, "V001_meta.py", 'from dbdeploy import Migration, RawSQL\n'
               'm = Migration(version="001", name="meta", operations=[RawSQL(forward="\\\\set x 1\\nSELECT 1",'
               ' rollback="SELECT 1")])\n')
    (tmp_path / "project").mkdir()
    project = make_project(tmp_path / "project", specs=REPO / "specs")
    import shutil

    shutil.rmtree(project.root / "specs")
    shutil.copytree(specs, project.root / "specs")
    shutil.rmtree(project.generated)
    result = project.run("generate")
    assert result.returncode == 2, result.stderr
    assert "V001_meta.py" in result.stderr and "forward" in result.stderr and "meta-command" in result.stderr
    assert "fix:" in result.stderr and "Traceback" not in result.stderr
    assert not project.generated.exists() or not any(project.generated.iterdir())


def test_spec_expression_with_a_psql_variable_is_refused_at_generate() -> None:
    from dbdeploy import CreateIndex, Index
    from dbdeploy.plan.loader import LoadedMigration
    from dbdeploy.plan.migration_plan import plan_all
    from dbdeploy.render.bundle import render_bundle

    migrations = [Migration(version="001", name="notes", operations=[NOTES]),
                  Migration(version="002", name="idx", operations=[CreateIndex(table="public.notes", index=Index(
                      name="notes_words_idx", columns=["((string_to_array(body, ' '))[1:2])"]))])]
    loaded = [LoadedMigration(m, Path(f"V{m.version}.py")) for m in migrations]
    with pytest.raises(SpecError) as caught:
        for plan, item in zip(plan_all(loaded), loaded, strict=True):
            render_bundle(plan, item.source.name)
    assert "psql variable" in str(caught.value) and caught.value.file == "V002.py" and caught.value.fix


# --- the splitter itself --------------------------------------------------------------------------

def test_splitting_in_small_windows_gives_the_same_statements(monkeypatch) -> None:
    """The lexer runs in windows; any window size finds the same statements as one pass."""
    files = sorted(REPO.glob("tests/golden/*/*.sql")) + sorted(REPO.glob("generated/*/*.sql"))
    whole = {f: psql_split.split_script(f.read_text()) for f in files}
    monkeypatch.setattr(psql_split, "_WINDOW", 97)
    for f in files:
        assert psql_split.split_script(f.read_text()) == whole[f], f


def test_copy_data_is_not_lexed_and_statements_after_it_are_found() -> None:
    rows = "".join(f"{i}\tit's /* {i}\t$$\n" for i in range(3000))
    text = f"BEGIN;\nCOPY t (a, b, c) FROM STDIN;\n{rows}\\.\nSELECT ';';\nCOMMIT;\n"
    found = psql_split.statements(text)
    assert [s.text for s in found] == ["BEGIN;", "COPY t (a, b, c) FROM STDIN;", "SELECT ';';", "COMMIT;"]
    assert found[1].copy_data == rows


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("-- dbdeploy:step 1 ", "-- dbdeploy:step one ", 1),
    lambda t: t.replace("-- dbdeploy:postamble", "-- dbdeploy:postambel", 1),
    lambda t: t.replace("-- dbdeploy:preamble\n", "", 1),
    lambda t: t.replace("BEGIN;\n", "BEGIN;\n\\echo hi\n", 1),
    lambda t: t.replace("BEGIN;\n", "BEGIN;\nSELECT 'open\n", 1),
    lambda t: t.replace("COMMIT;\n", "", 1),
], ids=["step_number", "postamble_typo", "no_preamble", "meta_command", "open_quote", "no_commit"])
def test_malformed_bundle_is_one_clear_integrity_error(edit, fresh_db: TestDatabase, tmp_path: Path) -> None:
    """A bundle whose markers or SQL cannot be read back (manifest sha256 made to match, so only the
    markers are wrong): apply and apply --dry-run exit 3 naming the file, never a traceback."""
    import hashlib
    import json

    from tests.executor_support import make_project

    project = make_project(tmp_path, fresh_db.dsn)
    forward = next(project.generated.glob("V001__*/V001__create*.sql"))
    text = forward.read_text()
    edited = edit(text)
    assert edited != text
    manifest_path = forward.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["forward"]["sha256"] = hashlib.sha256(edited.encode()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))
    forward.write_text(edited)
    for args in (["apply", "--env", "test", "--dry-run"], ["apply", "--env", "test"]):
        result = project.run(*args)
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert forward.name in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert fresh_db.execute("SELECT to_regclass('raw.site_tracking_events_r') IS NULL") == [(True,)]
