"""RawSQL with a declared search_path (issue 9, kind 11): SQL copied from ``pg_dump -s`` runs with
its unqualified names, under psql and the executor alike, while dbdeploy's own statements stay
pinned to ``pg_catalog, pg_temp`` and cannot be hijacked through the RawSQL's path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dbdeploy.errors import SpecError
from tests.executor_support import make_project, write_spec

SOURCE_SCHEMA = """
CREATE SCHEMA shop;
SET search_path = shop, public;
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(12,2) NOT NULL DEFAULT 0,
                     note jsonb);
CREATE TABLE order_lines (order_id bigint NOT NULL REFERENCES orders (id), line int NOT NULL,
                          amount numeric(12,2) NOT NULL, PRIMARY KEY (order_id, line));
CREATE FUNCTION order_total(p_order bigint) RETURNS numeric LANGUAGE sql STABLE
    AS $$ SELECT COALESCE(sum(amount), 0) FROM order_lines WHERE order_id = p_order $$;
CREATE FUNCTION refresh_total() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE DEBUG 'total of order %; recomputed', NEW.order_id;
    UPDATE orders SET total = order_total(NEW.order_id) WHERE id = NEW.order_id;
    RETURN NEW;
END $$;
CREATE TRIGGER order_lines_total AFTER INSERT OR UPDATE ON order_lines
    FOR EACH ROW EXECUTE FUNCTION refresh_total();
CREATE VIEW big_orders AS SELECT id, customer, total FROM orders WHERE total > 100;
CREATE FUNCTION big_order_count() RETURNS bigint LANGUAGE sql STABLE AS $$ SELECT count(*) FROM big_orders $$;
"""

# Written against the dumped schema with unqualified names, as an application developer would.
DATA = """
INSERT INTO orders (id, customer, note)
SELECT g, 'customer ' || g, jsonb_build_object('channel', CASE WHEN g % 2 = 0 THEN 'web' ELSE 'shop' END)
FROM generate_series(1, 600) g;
INSERT INTO order_lines SELECT g, l, g % 97 + l FROM generate_series(1, 600) g, generate_series(1, 3) l;
CREATE TABLE audit (what text, at timestamptz);
INSERT INTO audit SELECT 'raw sql ran', now();
"""

ROLLBACK = """
DROP FUNCTION IF EXISTS big_order_count();
DROP VIEW IF EXISTS big_orders;
DROP TABLE IF EXISTS order_lines;
DROP TABLE IF EXISTS audit;
DROP TABLE IF EXISTS orders;
DROP FUNCTION IF EXISTS refresh_total();
DROP FUNCTION IF EXISTS order_total(bigint);
DROP SCHEMA IF EXISTS shop;
"""

HOSTILE = """
CREATE SCHEMA evil;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2000-01-01 00:00:00+00'::timestamptz $$;
CREATE FUNCTION evil.hijacked_arrow(jsonb, text) RETURNS text LANGUAGE sql AS $$ SELECT 'hijacked' $$;
CREATE OPERATOR evil.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = evil.hijacked_arrow);
"""


def _pg_dump(server) -> str:
    local = Path(server.psql).parent / "pg_dump"
    return str(local) if local.is_file() else (shutil.which("pg_dump") or "pg_dump")


def dumped_schema(db) -> str:
    """``pg_dump -s`` of SOURCE_SCHEMA, made in a scratch schema of ``db`` and dropped again.

    Kept as pg_dump wrote it except its session header (SET …, set_config('search_path', '', …)
    and psql's \\restrict lines), which a RawSQL must not carry; ``check_function_bodies = false``
    stays, since pg_dump creates functions before the tables their bodies read."""
    with db.connect() as conn:     # its own session: SOURCE_SCHEMA sets a search_path
        conn.execute(SOURCE_SCHEMA)
    proc = subprocess.run([_pg_dump(db.server), "-s", "-n", "shop", "--no-owner", "--no-privileges", "-d", db.dsn],
                          capture_output=True, text=True, timeout=120, check=True, env=dict(os.environ))
    db.execute("DROP SCHEMA shop CASCADE")
    kept = []
    for line in proc.stdout.splitlines():
        if line.startswith("\\") or line.startswith("SELECT pg_catalog.set_config"):
            continue
        if line.startswith("SET ") and not line.startswith("SET check_function_bodies"):
            continue
        kept.append(line)
    text = "\n".join(kept)
    assert "CREATE TRIGGER order_lines_total" in text and "FROM order_lines WHERE" in text   # unqualified body
    return text


def _spec(dump: str, search_path: list[str] | None, extra_ops: str = "") -> str:
    path = f", search_path={search_path!r}" if search_path is not None else ""
    return (
        "from dbdeploy import AddColumn, Backfill, Column, Migration, RawSQL\n"
        f"DUMP = {dump + DATA!r}\n"
        f"ROLLBACK = {ROLLBACK!r}\n"
        'migration = Migration(version="001", name="shop_from_dump", operations=[\n'
        f"    RawSQL(forward=DUMP, rollback=ROLLBACK, verify='SELECT big_order_count() > 0'{path}),\n"
        f"{extra_ops}])\n")


HIJACK_OPS = """\
    AddColumn(table="shop.orders", column=Column(name="noted_at", type="timestamptz", default="now()")),
    AddColumn(table="shop.orders", column=Column(name="channel", type="text")),
    Backfill(table="shop.orders", set={"channel": "note ->> 'channel'"}, key=["id"], batch_size=100),
"""


def _state(db) -> dict:
    """What the RawSQL made: function definitions, trigger, view, and the data its trigger computed."""
    return {
        "functions": db.execute("SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p"
                                " WHERE p.pronamespace = 'shop'::regnamespace ORDER BY 1"),
        "trigger": db.execute("SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'order_lines_total'"),
        "view": db.execute("SELECT pg_get_viewdef('shop.big_orders'::regclass)"),
        "totals": db.execute("SELECT count(*), sum(total), count(*) FILTER (WHERE total > 100) FROM shop.orders"),
    }


def _project(tmp_path: Path, db, spec: str):
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_shop_from_dump.py", spec)
    return make_project(tmp_path / "p", db.dsn, specs=specs)


def test_pg_dump_output_needs_the_declared_search_path(fresh_db, tmp_path) -> None:
    """The issue's input: without search_path the dumped SQL fails on its unqualified names."""
    dump = dumped_schema(fresh_db)
    project = _project(tmp_path, fresh_db, _spec(dump, None))
    result = project.run("apply", "--env", "test", "--plain")
    assert result.returncode == 1, result.stdout + result.stderr
    assert 'relation "orders" does not exist' in result.stderr or 'relation "order_lines"' in result.stderr, \
        result.stderr
    assert fresh_db.execute("SELECT to_regnamespace('shop') IS NULL") == [(True,)]   # nothing half-applied


def test_pg_dump_output_with_search_path_same_under_psql_and_executor(fresh_db_each, db_factory, tmp_path) -> None:
    """Generated once, applied with the executor to one database and with psql to another: the
    same functions (pg_get_functiondef), trigger, view and computed data; verify passes; the rollback
    (unqualified DROPs) works both ways and leaves nothing."""
    db = fresh_db_each
    dump = dumped_schema(db)
    project = _project(tmp_path, db, _spec(dump, ["shop", "public"]))
    forward = next(project.generated.glob("V001__*/V001__shop_from_dump.sql"))
    rollback = next(project.generated.glob("V001__*/V001__rollback_shop_from_dump.sql"))
    text = forward.read_text()
    assert 'SET LOCAL search_path = "shop", "public", "pg_temp";' in text
    assert text.count("SET search_path = pg_catalog, pg_temp;") == 2     # the preamble, and after the RawSQL

    result = project.run("apply", "--env", "test", "--plain")
    assert result.returncode == 0, result.stdout + result.stderr
    via_executor = _state(db)
    assert via_executor["totals"][0][0] == 600 and via_executor["totals"][0][2] > 0
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    other = db_factory(db.server)
    # psql runs -f then -c in one session: after the bundle the path is pinned again
    shown = other.psql("-A", "-t", "-f", str(forward), "-c", "SHOW search_path").stdout
    assert shown.strip().splitlines()[-1] == "pg_catalog, pg_temp"
    assert _state(other) == via_executor

    back = project.run("rollback", "--env", "test", "--to", "0", "--plain")
    assert back.returncode == 0, back.stdout + back.stderr
    other.psql_file(rollback)
    for target in (db, other):
        assert target.execute("SELECT to_regnamespace('shop') IS NULL") == [(True,)]
        assert target.execute("SELECT status FROM migrations.migration_log") == [("rolled_back",)]
    other.psql_file(rollback)     # twice: harmless


def test_generated_tests_run_the_verify_query_with_the_search_path(fresh_db, tmp_path) -> None:
    dump = dumped_schema(fresh_db)
    project = _project(tmp_path, fresh_db, _spec(dump, ["shop", "public"]))
    manifest = json.loads(next(project.generated.glob("V001__*/manifest.json")).read_text())
    entry = next(e for e in manifest["expects"] if e["object"] == "sql")
    assert entry["search_path"] == '"shop", "public", "pg_temp"'
    assert project.run("apply", "--env", "test").returncode == 0
    tests = next(project.generated.glob("V001__*/test_V001__*.py"))
    proc = subprocess.run([str(Path(os.sys.executable).parent / "pytest"), "-q", "-p", "no:cacheprovider",
                           str(tests), "-m", "not rolled_back"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DBDEPLOY_TEST_DSN": fresh_db.dsn}, check=False, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("via", ["psql", "executor"])
def test_a_hostile_schema_in_the_raw_sql_path_does_not_reach_dbdeploy_statements(fresh_db, tmp_path, via) -> None:
    """The RawSQL puts ``evil`` before pg_catalog: inside it, now() is evil.now() (the author asked
    for that path). The AddColumn default and the Backfill (``->>``) that follow in the same bundle
    run pinned again: no evil default, no hijacked values."""
    dump = dumped_schema(fresh_db)
    fresh_db.execute(HOSTILE)
    project = _project(tmp_path, fresh_db, _spec(dump, ["shop", "evil", "pg_catalog"], HIJACK_OPS))
    forward = next(project.generated.glob("V001__*/V001__shop_from_dump.sql"))
    if via == "psql":
        fresh_db.psql_file(forward)
    else:
        result = project.run("apply", "--env", "test", "--plain")
        assert result.returncode == 0, result.stdout + result.stderr

    # the path was in force inside the RawSQL …
    assert fresh_db.execute("SELECT at FROM shop.audit") == [(fresh_db.execute(
        "SELECT '2000-01-01 00:00:00+00'::timestamptz")[0][0],)]
    # … and nowhere after it
    default = fresh_db.execute(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a"
        " ON a.attrelid = d.adrelid AND a.attnum = d.adnum"
        " WHERE d.adrelid = 'shop.orders'::regclass AND a.attname = 'noted_at'")[0][0]
    assert "evil" not in default
    assert fresh_db.execute("SELECT count(*) FROM shop.orders WHERE noted_at < '2001-01-01'") == [(0,)]
    assert fresh_db.execute("SELECT channel, count(*) FROM shop.orders GROUP BY 1 ORDER BY 1") == [
        ("shop", 300), ("web", 300)]


def test_a_failed_autocommit_raw_sql_does_not_leave_its_path_for_what_follows(fresh_db, tmp_path) -> None:
    """tx=none RawSQL (CREATE INDEX CONCURRENTLY) with a search_path whose second statement fails:
    psql stops there; the executor pins the path again on its connection before anything else
    (failure bookkeeping, a retry) runs on it."""
    import psycopg

    from dbdeploy.executor.bundles import parse_script
    from dbdeploy.executor.runner import ScriptRunner, StepFailed

    fresh_db.execute(HOSTILE + "CREATE SCHEMA shop; CREATE TABLE shop.items (id bigint PRIMARY KEY, name text);"
                     "INSERT INTO shop.items SELECT g, 'n' || g FROM generate_series(1, 500) g;")
    spec = (
        "from dbdeploy import Migration, RawSQL\n"
        'migration = Migration(version="001", name="idx", operations=[\n'
        "    RawSQL(forward='CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_idx ON items (name);\\n"
        "CREATE INDEX CONCURRENTLY items_bad_idx ON items (no_such_column);',\n"
        "           rollback='DROP INDEX CONCURRENTLY IF EXISTS items_name_idx;', search_path=['evil', 'pg_catalog',"
        " 'shop'])])\n")
    project = _project(tmp_path, fresh_db, spec)
    path = next(project.generated.glob("V001__*/V001__idx.sql"))
    text = path.read_text()
    assert "tx=none" in text and 'SET search_path = "evil", "pg_catalog", "shop", "pg_temp";' in text

    failed = fresh_db.psql_file(path, check=False)
    assert failed.returncode != 0 and "no_such_column" in failed.stderr
    assert fresh_db.execute("SELECT to_regclass('shop.items_name_idx') IS NOT NULL") == [(True,)]

    script = parse_script(text)
    with psycopg.connect(fresh_db.dsn, autocommit=True) as conn:
        runner = ScriptRunner(conn, label="V001", retries=0, lock_timeout="5s", statement_timeout="0",
                              progress=lambda _event: None)
        runner.run_plain(script.preamble)
        with pytest.raises(StepFailed, match="no_such_column"):
            runner.run_steps(script, lambda _outcome: None)
        assert conn.execute("SHOW search_path").fetchone() == ("pg_catalog, pg_temp",)
        assert conn.execute("""SELECT '{"a": "b"}'::jsonb ->> 'a'""").fetchone() == ("b",)


@pytest.mark.parametrize("value, fragment", [
    ([], "search_path is empty"),
    (["Shop"], "search_path schema 'Shop'"),
    (["shop; DROP TABLE x"], "search_path schema"),
    (["shop", "shop"], "more than once"),
])
def test_search_path_is_validated(value, fragment) -> None:
    from dbdeploy import RawSQL

    with pytest.raises((ValueError, SpecError)) as info:
        RawSQL(forward="SELECT 1", rollback="SELECT 1", search_path=value)
    assert fragment in str(info.value)


def test_checklist_shows_the_search_path(fresh_db, tmp_path) -> None:
    project = _project(tmp_path, fresh_db, _spec("CREATE SCHEMA shop;", ["shop", "public"]))
    checklist = next(project.generated.glob("V001__*/deployment_checklist.md")).read_text()
    assert 'runs with search_path = "shop", "public", "pg_temp"' in checklist
    assert 'raw SQL (forward, as written in the spec); search_path = "shop", "public", "pg_temp"' \
        in checklist
