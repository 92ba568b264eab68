"""Rollbacks never overwrite what the application wrote after the deploy (issue 9, kind 1).

For every rollback that writes data — a backfill's restore, the drop of a column AddColumn added
and filled, DropColumn's restore — the tests populate the table, apply the forward with the
executor, let "the application" write between forward and rollback (new values, the value the
forward wrote, inserts, deletes), roll back, and check: unchanged rows restored exactly, changed
rows keeping the application's value or kept in a backup table (the exact rows), the NOTICE counts,
and that a second run of the rollback changes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from tests.executor_support import make_project, write_spec

# The suite runs this module on the primary server (the round trips in tests/test_ops_roundtrip.py and the
# step-lock checks run on every server); DBDEPLOY_FULL=1 runs it on every server (README, "Testing").
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

BACKFILL_SPEC = '''
from dbdeploy import Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="customers", operations=[CreateTable(
    table="public.customers", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="name", type="text"), Column(name="tier", type="text")])])
second = Migration(version="002", name="tier_basic", operations=[
    Backfill(table="public.customers", set={"tier": "'basic'"}, where="tier IS NULL", batch_size=64)])
'''

RESTORE_NOTICE = re.compile(r"backfill of (\S+): restored the values before the deploy in (\d+) row\(s\); left (\d+) "
                            r"row\(s\) the application changed since the deploy as they are \(recorded in (\S+)\); "
                            r"(\d+) backed-up row\(s\) no longer exist")


def _project(tmp_path: Path, db, source: str):
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_spec.py", source)
    return make_project(tmp_path / "p", db.dsn, specs=specs)


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _rollback_file(project, version: str) -> Path:
    return next(project.generated.glob(f"V{version}__*/V{version}__rollback_*.sql"))


def _restore_counts(output: str) -> list[tuple[int, int, int]]:
    return [(int(m[2]), int(m[3]), int(m[5])) for m in RESTORE_NOTICE.finditer(output)]


def _rows(db, query: str, params=None) -> dict:
    return {r[0]: r[1:] if len(r) > 2 else r[1] for r in db.execute(query, params)}


# --- Backfill ---------------------------------------------------------------------------------


def test_backfill_rollback_keeps_what_the_application_wrote(fresh_db_each, tmp_path) -> None:
    """The issue's input: tier NULL → 'basic' by the backfill; the application sets some rows to
    'gold', some to 'basic' again, inserts and deletes rows; the rollback restores NULL only where
    the row still holds 'basic' from the backfill."""
    db = fresh_db_each
    project = _project(tmp_path, db, BACKFILL_SPEC)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute("INSERT INTO public.customers SELECT g, 'customer ' || g, CASE WHEN g % 3 = 0 THEN 'premium' END"
               " FROM generate_series(1, 600) g")
    before = _rows(db, "SELECT id, tier FROM public.customers")
    _ok(project.run("apply", "--env", "test", "--plain"))
    backfilled = {k for k, v in before.items() if v is None}
    assert _rows(db, "SELECT id, tier FROM public.customers WHERE id = ANY(%s)", [sorted(backfilled)]) == \
        dict.fromkeys(backfilled, "basic")

    # the application, after the deploy
    gold = {1, 2, 4, 5, 7, 8, 10, 11, 13, 14}
    same = {16, 17, 19}                       # set to exactly what the backfill wrote
    deleted = {20, 22, 23, 21}                # 21 was not backfilled
    db.execute("UPDATE public.customers SET tier = 'gold' WHERE id = ANY(%s)", [sorted(gold)])
    db.execute("UPDATE public.customers SET tier = 'basic' WHERE id = ANY(%s)", [sorted(same)])
    db.execute("UPDATE public.customers SET name = 'renamed' WHERE id = 25")       # another column only
    db.execute("UPDATE public.customers SET tier = 'platinum' WHERE id = 3")      # a row the backfill skipped
    db.execute("INSERT INTO public.customers SELECT g, 'new ' || g, CASE WHEN g % 2 = 0 THEN 'basic' END"
               " FROM generate_series(1001, 1020) g")
    db.execute("DELETE FROM public.customers WHERE id = ANY(%s)", [sorted(deleted)])
    now = _rows(db, "SELECT id, tier FROM public.customers")

    out = _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    restored = backfilled - gold - deleted
    assert _restore_counts(out) == [(len(restored), len(gold), len(backfilled & deleted))], out
    expected = {k: (before[k] if k in restored else v) for k, v in now.items()}
    after = _rows(db, "SELECT id, tier FROM public.customers")
    assert after == expected
    assert all(after[k] == "gold" for k in gold) and after[3] == "platinum"
    assert db.execute("SELECT name FROM public.customers WHERE id = 25") == [("renamed",)]
    kept = db.execute("SELECT id, tier, dbdeploy_written_tier, dbdeploy_current_tier"
                      " FROM dbdeploy_backup.v002_op1_customers_not_restored ORDER BY id")
    assert kept == [(k, None, "basic", "gold") for k in sorted(gold)]
    assert db.execute("SELECT to_regclass('dbdeploy_backup.v002_op1_customers'),"
                      " to_regclass('dbdeploy_backup.v002_op1_customers_progress')") == [(None, None)]

    # twice: the executor has nothing left to do, and the file itself changes nothing either
    again = _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    assert "nothing to roll back" in again
    db.psql_file(_rollback_file(project, "002"))
    assert _rows(db, "SELECT id, tier FROM public.customers") == expected
    assert len(db.execute("SELECT 1 FROM dbdeploy_backup.v002_op1_customers_not_restored")) == len(gold)


MULTI_SPEC = '''
from dbdeploy import Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="events", operations=[CreateTable(
    table="public.events", primary_key=["region", "id"],
    columns=[Column(name="region", type="text"), Column(name="id", type="bigint"), Column(name="status", type="text"),
             Column(name="meta", type="json"), Column(name="score", type="numeric(8,2)")])])
second = Migration(version="002", name="archive", operations=[
    Backfill(table="public.events", set={"status": "'archived'", "meta": "json_build_object('archived', true)"},
             where="status = 'old'", batch_size=50)])
'''


def test_backfill_of_two_columns_with_json_and_a_composite_key_rolled_back_with_psql(fresh_db_each, tmp_path) -> None:
    """Row-level: a row in which the application changed either column keeps both; json (no '='
    operator) is compared too. Forward with the executor, rollback with psql -v ON_ERROR_STOP=1 -f."""
    db = fresh_db_each
    project = _project(tmp_path, db, MULTI_SPEC)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute("INSERT INTO public.events SELECT r, g, CASE WHEN g % 4 = 0 THEN 'live' ELSE 'old' END,"
               " json_build_object('n', g), g / 10.0 FROM unnest(ARRAY['eu', 'us']) r, generate_series(1, 300) g")
    query = "SELECT region || ':' || id, status, meta::text, score FROM public.events"
    before = _rows(db, query)
    _ok(project.run("apply", "--env", "test", "--plain"))
    backfilled = {k for k, v in before.items() if v[0] == "old"}
    assert len(backfilled) == 450

    db.execute("UPDATE public.events SET meta = '{\"archived\": false}' WHERE region = 'eu' AND id IN (1, 2, 3)")
    db.execute("UPDATE public.events SET status = 'reopened' WHERE region = 'us' AND id IN (5, 6)")
    db.execute("UPDATE public.events SET score = 99 WHERE region = 'us' AND id = 7")          # not a backfilled column
    db.execute("UPDATE public.events SET status = 'archived', meta = json_build_object('archived', true)"
               " WHERE region = 'eu' AND id = 9")                                             # the same values again
    db.execute("DELETE FROM public.events WHERE region = 'eu' AND id IN (10, 11)")
    db.execute("INSERT INTO public.events VALUES ('ap', 1, 'archived', '{\"archived\": true}', 1)")
    now = _rows(db, query)
    changed = {"eu:1", "eu:2", "eu:3", "us:5", "us:6"}

    proc = db.psql_file(_rollback_file(project, "002"))
    restored = backfilled - changed - {"eu:10", "eu:11"}
    assert _restore_counts(proc.stderr) == [(len(restored), len(changed), 2)], proc.stderr
    expected = {k: ((*before[k][:2], v[2]) if k in restored else v) for k, v in now.items()}
    assert _rows(db, query) == expected
    kept = db.execute("SELECT region || ':' || id, status, meta::text, dbdeploy_current_status,"
                      " dbdeploy_current_meta::text FROM dbdeploy_backup.v002_op1_events_not_restored ORDER BY 1")
    assert kept == [(k, before[k][0], before[k][1], now[k][0], now[k][1]) for k in sorted(changed)]
    assert db.execute("SELECT status FROM migrations.migration_log WHERE version = '002'") == [("rolled_back",)]

    again = db.psql_file(_rollback_file(project, "002"))
    assert "restored the values" not in again.stderr
    assert _rows(db, query) == expected


def test_a_killed_backfill_rolls_back_what_it_did(fresh_db_each, tmp_path) -> None:
    """The forward stops after two batches (as when the process is killed: each batch commits with
    its cursor); the application writes; the rollback restores exactly the rows those batches changed
    and the application did not."""
    from dbdeploy.executor.bundles import parse_script

    db = fresh_db_each
    project = _project(tmp_path, db, BACKFILL_SPEC)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute("INSERT INTO public.customers SELECT g, 'c' || g, NULL FROM generate_series(1, 500) g")
    script = parse_script(next(project.generated.glob("V002__*/V002__tier_basic.sql")).read_text())
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        for statement in script.preamble:
            conn.execute(statement)
        for step in script.steps:
            if step.batch is not None:
                # the loop contract (dbdeploy.bundle.markers): the loop sets the batch's row count first
                conn.execute("SELECT pg_catalog.set_config('dbdeploy.batch_rows', %s, false)", [str(step.batch_rows)])
                for _ in range(2):
                    conn.execute(step.batch)
                break
            with conn.transaction():
                for statement in step.statements:
                    conn.execute(statement)
    assert db.execute("SELECT count(*) FROM public.customers WHERE tier = 'basic'") == [(128,)]
    assert db.execute("SELECT status FROM migrations.migration_log WHERE version = '002'") == [("running",)]
    db.execute("UPDATE public.customers SET tier = 'gold' WHERE id IN (3, 300)")   # one done, one not yet

    out = _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    assert _restore_counts(out) == [(127, 1, 0)], out
    assert _rows(db, "SELECT id, tier FROM public.customers WHERE tier IS NOT NULL") == {3: "gold", 300: "gold"}
    assert db.execute("SELECT id FROM dbdeploy_backup.v002_op1_customers_not_restored") == [(3,)]


def test_backfill_on_a_table_the_rollback_drops_only_removes_its_state(fresh_db) -> None:
    """ctx.rollback_drops (INTERFACE.md): the table goes with all its rows copied, so the restore is
    skipped, but the backfill's backup and cursor tables are still dropped."""
    from dbdeploy import Backfill
    from dbdeploy.ops.base import PlanContext, SchemaState, TableState

    state = SchemaState(tables={"public.t": TableState(primary_key=["id"])})
    op = Backfill(table="public.t", set={"v": "1"})
    ctx = PlanContext(version="001", migration_name="m", index=2, state=state,
                      rollback_drops=frozenset({"public.t"}))
    [step] = op.rollback(ctx)
    assert step.kind == "drop_backfill_state" and "UPDATE" not in step.sql
    fresh_db.execute("CREATE SCHEMA dbdeploy_backup; CREATE TABLE public.t (id int PRIMARY KEY, v int);"
                     "INSERT INTO public.t SELECT g, 5 FROM generate_series(1, 500) g;"
                     "CREATE TABLE dbdeploy_backup.v001_op2_t (id int PRIMARY KEY, v int, dbdeploy_written_v int);"
                     "INSERT INTO dbdeploy_backup.v001_op2_t SELECT g, NULL, 5 FROM generate_series(1, 500) g;"
                     "CREATE TABLE dbdeploy_backup.v001_op2_t_progress (id int)")
    fresh_db.execute(step.sql)
    assert fresh_db.execute("SELECT to_regclass('dbdeploy_backup.v001_op2_t'),"
                            " to_regclass('dbdeploy_backup.v001_op2_t_progress')") == [(None, None)]
    assert fresh_db.execute("SELECT count(*) FROM public.t WHERE v = 5") == [(500,)]
    normal = op.rollback(PlanContext(version="001", migration_name="m", index=2, state=state))[0]
    assert normal.kind == "restore_backfill"


# --- AddColumn: the fill of a new column ------------------------------------------------------

FILL_SPEC = '''
from dbdeploy import AddColumn, Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="accounts", operations=[CreateTable(
    table="public.accounts", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="name", type="text")])])
second = Migration(version="002", name="tokens_and_levels", operations=[
    AddColumn(table="public.accounts", column=Column(name="token", type="uuid", default="gen_random_uuid()")),
    AddColumn(table="public.accounts", column=Column(name="level", type="text", nullable=False)),
    Backfill(table="public.accounts", set={"level": "'standard'"}, where="level IS NULL", batch_size=100),
])
'''

COPIED = re.compile(r"copied the non-NULL values of (\S+) \((\d+) row\(s\)\) to (\S+)")


def test_added_and_filled_columns_keep_every_application_value_in_the_backup(fresh_db_each, tmp_path) -> None:
    """A volatile-default column filled in batches and a NOT NULL column filled by a backfill: the
    rollback removes both columns; every value in them — the fill's and the application's — is copied
    with the key first (the NOTICE gives the count and the table); the backfill's restore leaves the
    rows the application changed and records them."""
    db = fresh_db_each
    project = _project(tmp_path, db, FILL_SPEC)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute("INSERT INTO public.accounts SELECT g, 'a' || g FROM generate_series(1, 700) g")
    _ok(project.run("apply", "--env", "test", "--plain"))
    assert db.execute("SELECT count(*) FROM public.accounts WHERE token IS NULL OR level IS NULL") == [(0,)]

    db.execute("UPDATE public.accounts SET token = ('00000000-0000-0000-0000-00000000000' || (id % 10))::uuid,"
               " level = 'vip' WHERE id IN (1, 2, 3)")
    db.execute("UPDATE public.accounts SET level = 'standard' WHERE id = 4")
    db.execute("INSERT INTO public.accounts (id, name, level) SELECT g, 'n' || g, 'trial'"
               " FROM generate_series(701, 720) g")
    db.execute("DELETE FROM public.accounts WHERE id IN (5, 6)")
    tokens = _rows(db, "SELECT id, token FROM public.accounts")
    levels = _rows(db, "SELECT id, level FROM public.accounts")

    out = _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    # level is dropped by the same rollback (V002 added it): the backfill is not restored first (no
    # full-table UPDATE, issue 10 item 11); its backup is kept, renamed, so the values it wrote are known
    assert _restore_counts(out) == [], out
    kept = re.search(r"the values before the deploy and the values it wrote are kept in (\S+)", out)
    assert kept, out
    copies = {m[1]: (int(m[2]), m[3]) for m in COPIED.finditer(out)}
    assert set(copies) == {"public.accounts.token", "public.accounts.level"}, out
    assert copies["public.accounts.token"][0] == len(tokens)
    assert _rows(db, f"SELECT id, token FROM {copies['public.accounts.token'][1]}") == tokens
    # every level value is in the copy; the application's are those the backfill did not write
    assert copies["public.accounts.level"][0] == len(levels)
    assert _rows(db, f"SELECT id, level FROM {copies['public.accounts.level'][1]}") == levels
    written = _rows(db, f"SELECT id, dbdeploy_written_level FROM {kept[1]}")
    assert {k for k, v in levels.items() if written.get(k) != v} == {1, 2, 3, *range(701, 721)}
    columns = {r[0] for r in db.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'public.accounts'::regclass"
                                        " AND attnum > 0 AND NOT attisdropped")}
    assert columns == {"id", "name"}
    db.psql_file(_rollback_file(project, "002"))     # twice: harmless
    assert db.execute("SELECT count(*) FROM public.accounts") == [(718,)]


# --- DropColumn -------------------------------------------------------------------------------

DROP_SPEC = '''
from dbdeploy import Column, CreateTable, DropColumn, Migration
first = Migration(version="001", name="items", operations=[CreateTable(
    table="public.items", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="name", type="text"),
             Column(name="status", type="text", nullable=False, default="'new'"),
             Column(name="code", type="text", nullable=False), Column(name="note", type="text")])])
second = Migration(version="002", name="drop_status", operations=[
    DropColumn(table="public.items", column="status"), DropColumn(table="public.items", column="note")])
third = Migration(version="003", name="drop_code", operations=[DropColumn(table="public.items", column="code")])
'''

RESTORED = re.compile(r"restored column (\S+): the saved values of (\d+) row\(s\) put back; (\d+) row\(s\) inserted "
                      r"since the drop got the column default \(NULL without one\); the saved values of (\d+) row\(s\) "
                      r"deleted since")


def _preflight(version: str, column: str) -> str:
    """DropColumn.rollback_preflight as the rollback's preflight step runs it (INTERFACE.md)."""
    from dbdeploy.ops import DropColumn
    from dbdeploy.ops.base import PlanContext, SchemaState
    from dbdeploy.sql.blocks import block, do_block

    ctx = PlanContext(version=version, migration_name="m", index=1, state=SchemaState())
    checks = DropColumn(table="public.items", column=column).rollback_preflight(ctx)
    return do_block(block(*checks), declare=["v_dependants text", "v_count bigint"])


def _populate_items(db) -> None:
    db.execute("INSERT INTO public.items SELECT g, 'item ' || g, CASE WHEN g % 2 = 0 THEN 'done' ELSE 'new' END,"
               " 'c' || g, CASE WHEN g % 5 = 0 THEN 'n' || g END FROM generate_series(1, 600) g")


def test_drop_column_restore_puts_back_every_saved_value_and_defaults_new_rows(fresh_db_each, tmp_path) -> None:
    db = fresh_db_each
    project = _project(tmp_path, db, DROP_SPEC)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    _populate_items(db)
    before = _rows(db, "SELECT id, status, note FROM public.items")
    _ok(project.run("apply", "--env", "test", "--to", "2", "--plain"))

    db.execute("UPDATE public.items SET name = 'renamed' WHERE id < 10")
    db.execute("DELETE FROM public.items WHERE id IN (10, 11, 12)")
    db.execute("INSERT INTO public.items (id, name, code) SELECT g, 'new', 'x' || g FROM generate_series(1001, 1005) g")

    out = _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    counts = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in RESTORED.finditer(out)}
    assert counts == {"public.items.status": (597, 5, 3), "public.items.note": (597, 5, 3)}, out
    after = _rows(db, "SELECT id, status, note FROM public.items")
    expected = {k: v for k, v in before.items() if k not in (10, 11, 12)}
    expected.update({k: ("new", None) for k in range(1001, 1006)})
    assert after == expected
    assert db.execute("SELECT count(*) FROM public.items WHERE name = 'renamed'") == [(9,)]
    assert db.execute("SELECT attnotnull, pg_get_expr(adbin, adrelid) FROM pg_attribute"
                      " JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum"
                      " WHERE attrelid = 'public.items'::regclass AND attname = 'status'") == [(True, "'new'::text")]
    db.psql_file(_rollback_file(project, "002"))     # twice: harmless
    assert _rows(db, "SELECT id, status, note FROM public.items") == expected


def test_drop_column_restore_refuses_and_changes_nothing(fresh_db_each, tmp_path) -> None:
    """NOT NULL without a default and rows inserted since the drop: refused, naming the count. A column
    of the same name added again by hand: refused, its values untouched. Each time the database is
    exactly as before the attempt; once the cause is gone the rollback succeeds."""
    db = fresh_db_each
    project = _project(tmp_path, db, DROP_SPEC)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    _populate_items(db)
    codes = _rows(db, "SELECT id, code FROM public.items")
    _ok(project.run("apply", "--env", "test", "--plain"))
    db.execute("INSERT INTO public.items (id, name) VALUES (2001, 'a'), (2002, 'b')")
    snapshot = db.execute("SELECT * FROM public.items ORDER BY id")

    refused = project.run("rollback", "--env", "test", "--to", "2", "--plain")
    assert refused.returncode == 1
    assert "cannot restore NOT NULL column public.items.code without a default" in refused.stderr
    assert "rows: 2" in refused.stderr
    assert db.execute("SELECT * FROM public.items ORDER BY id") == snapshot
    with pytest.raises(psycopg.errors.RaiseException, match="without a default"):   # the rollback's preflight too
        db.execute(_preflight("003", "code"))

    db.execute("DELETE FROM public.items WHERE id > 2000")
    db.execute("ALTER TABLE public.items ADD COLUMN code text DEFAULT 'hand'")
    snapshot = db.execute("SELECT * FROM public.items ORDER BY id")
    refused = project.run("rollback", "--env", "test", "--to", "2", "--plain")
    assert refused.returncode == 1
    assert "a column of that name was added again after V003 dropped it" in refused.stderr
    assert db.execute("SELECT * FROM public.items ORDER BY id") == snapshot
    with pytest.raises(psycopg.errors.RaiseException, match="added again"):
        db.execute(_preflight("003", "code"))
    assert db.execute("SELECT count(*) FROM dbdeploy_backup.v003_op1_items_code") == [(600,)]

    db.execute("ALTER TABLE public.items DROP COLUMN code")
    db.execute(_preflight("003", "code"))            # nothing to refuse any more
    out = _ok(project.run("rollback", "--env", "test", "--to", "2", "--plain"))
    assert "the saved values of 600 row(s) put back; 0 row(s) inserted" in out
    assert _rows(db, "SELECT id, code FROM public.items") == codes
