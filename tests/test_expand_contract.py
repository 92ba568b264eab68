"""Expand/contract on real PostgreSQL (15 and 18): RenameColumn / RenameTable with ``online=True`` and
``Contract``.

What the round trips (tests/test_ops_roundtrip.py) cannot see: writes through the old and the new
name while both exist, values written through the new name surviving the expansion's rollback,
values written after a contract surviving its rollback, and ``dbdeploy status`` listing the open
expansions until the contract is applied.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from dbdeploy import (
    AlterColumnType,
    Column,
    Contract,
    CreateTable,
    Index,
    Migration,
    RenameColumn,
    RenameTable,
    Unique,
)
from tests.bundles import write_bundles
from tests.executor_support import make_project, write_spec
from tests.pg import TestDatabase
from tests.roundtrip import expect_failure, relation_exists, run_sql_file

# The suite runs these focused tests on the primary server (the round trips of the same operations in
# tests/test_ops_roundtrip.py run on every server); DBDEPLOY_FULL=1 runs them on every server.
PRIMARY_SERVER_ONLY_UNLESS_FULL = True

ROWS = 500

MEMBERS = Migration(version="001", name="members", operations=[CreateTable(
    table="public.members",
    columns=[Column(name="id", type="bigint", nullable=False), Column(name="email", type="text", nullable=False),
             Column(name="handle", type="text", nullable=False, default="'anon'"),
             Column(name="score", type="integer")],
    primary_key=["id"], indexes=[Index(columns=["handle"])], uniques=[Unique(columns=["email"])])])
POPULATE = ("INSERT INTO public.members SELECT g, 'm' || g || '@example.com', 'h' || g,"
            f" CASE WHEN g % 7 = 0 THEN NULL ELSE g END FROM generate_series(1, {ROWS}) g")
EXPAND_COLUMNS = Migration(version="002", name="expand", operations=[
    RenameColumn(table="public.members", column="handle", new_name="nick", online=True),
    RenameColumn(table="public.members", column="score", new_name="points", online=True)])
EXPAND_TABLE = Migration(version="002", name="expand", operations=[
    RenameTable(table="public.members", new_name="public.people", online=True)])
CONTRACT = Migration(version="003", name="contract", operations=[Contract(version="002")])
# AlterColumnType(online=True): integer → bigint by cast both ways; text → varchar(64) with conversions.
EXPAND_TYPES = Migration(version="002", name="expand", operations=[
    AlterColumnType(table="public.members", column="score", type="bigint", online=True, new_name="score_big"),
    AlterColumnType(table="public.members", column="handle", type="varchar(64)", online=True, new_name="handle_v",
                    using="upper(handle)", back="lower(handle_v)")])


def _apply(db: TestDatabase, tmp_path: Path, *migrations: Migration):
    """Bundles of ``migrations``; the first is applied and populated, the rest are returned unapplied."""
    bundles = write_bundles(list(migrations), tmp_path)
    run_sql_file(db, bundles["001"].forward)
    db.execute(POPULATE)
    return bundles


def _column_pairs(db: TestDatabase) -> list[tuple]:
    return db.execute("SELECT count(*) FILTER (WHERE handle IS DISTINCT FROM nick),"
                      " count(*) FILTER (WHERE score IS DISTINCT FROM points) FROM public.members")


def test_old_and_new_column_names_read_and_write_the_same_values(fresh_db_each: TestDatabase, tmp_path: Path):
    db = fresh_db_each
    bundles = _apply(db, tmp_path, MEMBERS, EXPAND_COLUMNS)
    run_sql_file(db, bundles["002"].forward)
    assert _column_pairs(db) == [(0, 0)], "the backfill left rows whose new column differs"

    # old code: only the old names; new code: only the new names
    db.execute("INSERT INTO public.members (id, email, handle, score) VALUES (-1, 'old@x', 'old', 1)")
    db.execute("INSERT INTO public.members (id, email, nick, points) VALUES (-2, 'new@x', 'new', 2)")
    db.execute("INSERT INTO public.members (id, email) VALUES (-3, 'defaults@x')")      # new code, default
    db.execute("UPDATE public.members SET handle = 'old-upd', score = 10 WHERE id IN (1, -2)")
    db.execute("UPDATE public.members SET nick = 'new-upd', points = 20 WHERE id IN (2, -1)")
    db.execute("UPDATE public.members SET email = email || '.x' WHERE id = 3")         # neither renamed column
    assert db.execute("SELECT id, handle, nick, score, points FROM public.members WHERE id IN (-3, -2, -1, 1, 2, 3)"
                      " ORDER BY id") == [
        (-3, "anon", "anon", None, None), (-2, "old-upd", "old-upd", 10, 10), (-1, "new-upd", "new-upd", 20, 20),
        (1, "old-upd", "old-upd", 10, 10), (2, "new-upd", "new-upd", 20, 20), (3, "h3", "h3", 3, 3)]
    # both written at once, differently: the new name wins
    db.execute("UPDATE public.members SET handle = 'a', nick = 'b' WHERE id = 4")
    assert db.execute("SELECT handle, nick FROM public.members WHERE id = 4") == [("b", "b")]
    # NOT NULL of the old column holds for the new one (a validated check)
    assert db.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = 'public.members'::regclass"
                      " AND conname = 'dbdeploy_v002_nick_not_null'") == [(True,)]
    # the spec-known index on handle is mirrored on nick
    assert db.execute("SELECT pg_get_indexdef(to_regclass('public.members_handle_idx_nick'))") == [
        ("CREATE INDEX members_handle_idx_nick ON public.members USING btree (nick)",)]
    assert _column_pairs(db) == [(0, 0)]

    # rollback of the expansion: the values written through the new names stay (in the old columns)
    run_sql_file(db, bundles["002"].rollback)
    assert db.execute("SELECT id, handle, score FROM public.members WHERE id IN (-3, -2, -1, 2, 4) ORDER BY id") == [
        (-3, "anon", None), (-2, "old-upd", 10), (-1, "new-upd", 20), (2, "new-upd", 20), (4, "b", 4)]
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.members'::regclass"
                      " AND attname IN ('nick', 'points') AND NOT attisdropped") == [(0,)]
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.members'::regclass") == [(0,)]
    assert db.execute("SELECT count(*) FROM public.members") == [(ROWS + 3,)]


def test_contract_and_its_rollback_keep_values_written_after_the_contract(fresh_db_each: TestDatabase,
                                                                        tmp_path: Path):
    db = fresh_db_each
    bundles = _apply(db, tmp_path, MEMBERS, EXPAND_COLUMNS, CONTRACT)
    run_sql_file(db, bundles["002"].forward)
    run_sql_file(db, bundles["003"].forward)
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.members'::regclass"
                      " AND attname IN ('handle', 'score') AND NOT attisdropped") == [(0,)]
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.members'::regclass") == [(0,)]
    # the new column is NOT NULL now (the check proved it, and is gone)
    assert db.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'public.members'::regclass"
                      " AND attname = 'nick'") == [(True,)]
    assert db.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.members'::regclass"
                      " AND conname = 'dbdeploy_v002_nick_not_null'") == [(0,)]
    # the new column took the old one's default
    db.execute("INSERT INTO public.members (id, email) VALUES (-1, 'after@x')")
    db.execute("UPDATE public.members SET nick = 'after', points = 99 WHERE id = 5")
    assert db.execute("SELECT nick FROM public.members WHERE id = -1") == [("anon",)]

    run_sql_file(db, bundles["003"].rollback)
    assert db.execute("SELECT id, handle, nick, score, points FROM public.members WHERE id IN (-1, 5) ORDER BY id") \
        == [(-1, "anon", "anon", None, None), (5, "after", "after", 99, 99)]
    assert _column_pairs(db) == [(0, 0)]
    # the old column is NOT NULL again, with its index, and old code writes through it again
    assert db.execute("SELECT attname, attnotnull FROM pg_attribute WHERE attrelid = 'public.members'::regclass"
                      " AND attname IN ('handle', 'nick') ORDER BY 1") == [("handle", True), ("nick", False)]
    assert db.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = 'public.members'::regclass"
                      " AND conname = 'dbdeploy_v002_nick_not_null'") == [(True,)]
    assert relation_exists(db.connect(), "public.members_handle_idx")
    db.execute("INSERT INTO public.members (id, email, handle) VALUES (-2, 'old-again@x', 'old-again')")
    assert db.execute("SELECT nick FROM public.members WHERE id = -2") == [("old-again",)]

    run_sql_file(db, bundles["003"].forward)
    assert db.execute("SELECT id, nick, points FROM public.members WHERE id IN (-2, -1, 5) ORDER BY id") == [
        (-2, "old-again", None), (-1, "anon", None), (5, "after", 99)]


def test_type_expansion_converts_writes_both_ways_and_its_rollbacks_keep_them(fresh_db_each: TestDatabase,
                                                                           tmp_path: Path):
    """AlterColumnType(online=True): old code writes the old type, new code the new one, each converted
    into the other; the expansion's rollback keeps what new code wrote (converted back); after the
    contract the new column has the old default (cast) and NOT NULL; the contract's rollback re-adds the
    old column with its own type and default, filled (converted back) with what was written since."""
    db = fresh_db_each
    bundles = _apply(db, tmp_path, MEMBERS, EXPAND_TYPES, CONTRACT)
    run_sql_file(db, bundles["002"].forward)
    assert db.execute("SELECT count(*) FROM public.members WHERE handle_v IS DISTINCT FROM upper(handle)"
                      " OR score_big IS DISTINCT FROM score") == [(0,)]
    db.execute("INSERT INTO public.members (id, email, handle, score) VALUES (-1, 'old@x', 'old', 1)")
    db.execute("INSERT INTO public.members (id, email, handle_v, score_big) VALUES (-2, 'new@x', 'NEW', 2)")
    db.execute("INSERT INTO public.members (id, email) VALUES (-3, 'defaults@x')")
    db.execute("UPDATE public.members SET handle_v = 'UPD', score_big = 20 WHERE id = 2")
    assert db.execute("SELECT id, handle, handle_v, score, score_big FROM public.members WHERE id IN (-3, -2, -1, 2)"
                      " ORDER BY id") == [(-3, "anon", "ANON", None, None), (-2, "new", "NEW", 2, 2),
                                          (-1, "old", "OLD", 1, 1), (2, "upd", "UPD", 20, 20)]
    # a value the old type cannot hold fails the write: the old code could not read it
    with pytest.raises(Exception, match="out of range"):
        db.execute("UPDATE public.members SET score_big = 3000000000 WHERE id = 3")
    assert db.execute("SELECT score, score_big FROM public.members WHERE id = 3") == [(3, 3)]

    run_sql_file(db, bundles["002"].rollback)
    assert db.execute("SELECT id, handle, score FROM public.members WHERE id IN (-2, 2) ORDER BY id") == [
        (-2, "new", 2), (2, "upd", 20)]
    assert db.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.members'::regclass"
                      " AND attname IN ('handle_v', 'score_big') AND NOT attisdropped") == [(0,)]

    run_sql_file(db, bundles["002"].forward)
    run_sql_file(db, bundles["003"].forward)
    assert db.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull,"
                      " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
                      " ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE attrelid = 'public.members'::regclass"
                      " AND attname IN ('handle', 'handle_v', 'score', 'score_big') AND NOT attisdropped"
                      " ORDER BY 1") == [("handle_v", "character varying(64)", True,
                                          "('anon'::text)::character varying(64)"),
                                         ("score_big", "bigint", False, None)]
    db.execute("INSERT INTO public.members (id, email) VALUES (-4, 'after@x')")
    db.execute("UPDATE public.members SET handle_v = 'AFTER', score_big = 99 WHERE id = 5")

    run_sql_file(db, bundles["003"].rollback)
    assert db.execute("SELECT attname, format_type(atttypid, atttypmod), attnotnull,"
                      " pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d"
                      " ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE attrelid = 'public.members'::regclass"
                      " AND attname IN ('handle', 'score') AND NOT attisdropped ORDER BY 1") == [
        ("handle", "text", True, "'anon'::text"), ("score", "integer", False, None)]
    assert db.execute("SELECT id, handle, handle_v, score, score_big FROM public.members WHERE id IN (-4, 5)"
                      " ORDER BY id") == [(-4, "anon", "ANON", None, None), (5, "after", "AFTER", 99, 99)]
    assert db.execute("SELECT count(*) FROM public.members WHERE handle_v IS DISTINCT FROM upper(handle)"
                      " OR score_big IS DISTINCT FROM score") == [(0,)]
    assert relation_exists(db.connect(), "public.members_handle_idx")


def test_old_table_name_is_an_updatable_view_until_the_contract(fresh_db_each: TestDatabase, tmp_path: Path):
    db = fresh_db_each
    bundles = _apply(db, tmp_path, MEMBERS, EXPAND_TABLE, CONTRACT)
    run_sql_file(db, bundles["002"].forward)
    db.execute("INSERT INTO public.members (id, email) VALUES (-1, 'old@x')")          # old code, via the view
    db.execute("INSERT INTO public.people (id, email, handle) VALUES (-2, 'new@x', 'n')")
    db.execute("UPDATE public.members SET score = 7 WHERE id = -2")
    db.execute("DELETE FROM public.members WHERE id = 1")
    assert db.execute("SELECT id, handle, score FROM public.people WHERE id IN (-2, -1, 1) ORDER BY id") == [
        (-2, "n", 7), (-1, "anon", None)]

    run_sql_file(db, bundles["003"].forward)
    assert not relation_exists(db.connect(), "public.members")
    db.execute("INSERT INTO public.people (id, email) VALUES (-3, 'after@x')")
    run_sql_file(db, bundles["003"].rollback)
    assert db.execute("SELECT count(*) FROM public.members WHERE id IN (-3, -2, -1)") == [(3,)]

    run_sql_file(db, bundles["002"].rollback)   # rows written through either name stay in the table
    assert db.execute("SELECT relkind FROM pg_class WHERE oid = 'public.members'::regclass") == [("r",)]
    assert db.execute("SELECT id FROM public.members WHERE id < 0 ORDER BY id") == [(-3,), (-2,), (-1,)]
    assert not relation_exists(db.connect(), "public.people")


def test_expansion_rollback_refuses_before_any_change_when_a_view_uses_the_new_column(fresh_db: TestDatabase,
                                                                                     tmp_path: Path):
    db = fresh_db
    bundles = _apply(db, tmp_path, MEMBERS, EXPAND_COLUMNS)
    run_sql_file(db, bundles["002"].forward)
    db.execute("CREATE VIEW public.nicks AS SELECT nick FROM public.members")
    expect_failure(db, bundles["002"].rollback, "refusing to drop column public.members.nick")
    assert db.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.members'::regclass") == [(2,)]
    assert db.execute("SELECT status FROM migrations.migration_log WHERE version = '002'") == [("completed",)]


SPEC_001 = textwrap.dedent('''
    from dbdeploy import Column, CreateTable, Migration
    migration = Migration(version="001", name="members", operations=[CreateTable(
        table="public.members", columns=[Column(name="id", type="bigint", nullable=False),
                                         Column(name="handle", type="text")], primary_key=["id"])])
''')
SPEC_002 = textwrap.dedent('''
    from dbdeploy import Migration, RenameColumn
    migration = Migration(version="002", name="expand", operations=[
        RenameColumn(table="public.members", column="handle", new_name="nick", online=True)])
''')
SPEC_003 = textwrap.dedent('''
    from dbdeploy import Contract, Migration
    migration = Migration(version="003", name="contract", operations=[Contract(version="002")])
''')


def test_status_lists_open_expansions_until_the_contract(fresh_db: TestDatabase, tmp_path: Path):
    specs = tmp_path / "specs"
    write_spec(specs, "V001__members.py", SPEC_001)
    write_spec(specs, "V002__expand.py", SPEC_002)
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=specs)
    manifest = json.loads(next(project.generated.glob("V002__*/manifest.json")).read_text())
    assert manifest["expands"] == ["public.members.handle → nick (column: both names synced by a trigger)"]

    assert project.run("apply", "--env", "test").returncode == 0
    status = project.run("status", "--env", "test", "--json")
    rows = {r["version"]: r for r in json.loads(status.stdout)}
    assert rows["002"]["open_expansions"] == ["public.members.handle → nick (column: both names synced by a trigger)"]
    assert rows["001"]["open_expansions"] == []
    text = project.run("status", "--env", "test")
    assert "V002 expansion still open: public.members.handle → nick" in text.stdout
    assert 'Contract(version="002")' in text.stdout

    write_spec(project.root / "specs", "V003__contract.py", SPEC_003)
    assert project.run("generate").returncode == 0
    assert json.loads(next(project.generated.glob("V003__*/manifest.json")).read_text())["contracts"] == ["002"]
    status = project.run("status", "--env", "test", "--json")
    assert json.loads(status.stdout)[1]["open_expansions"] == ["public.members.handle → nick (column: both names "
                                                               "synced by a trigger)"], "V003 is not applied yet"
    applied = project.run("apply", "--env", "test")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    rows = json.loads(project.run("status", "--env", "test", "--json").stdout)
    assert all(r["open_expansions"] == [] for r in rows)
    assert "expansion still open" not in project.run("status", "--env", "test").stdout
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # rolled back, the contract no longer closes it
    assert project.run("rollback", "--env", "test", "--to", "002").returncode == 0
    rows = {r["version"]: r for r in json.loads(project.run("status", "--env", "test", "--json").stdout)}
    assert rows["002"]["open_expansions"] != []


@pytest.mark.parametrize("manifest_extra", [{}, {"expands": ["x"], "contracts": ["001"]}])
def test_manifest_reads_with_and_without_the_expansion_fields(manifest_extra, tmp_path: Path):
    from dbdeploy.bundle.manifest import Manifest

    data = {"version": "002", "name": "m", "checksum": "c",
            "files": {"forward": {"name": "f.sql", "sha256": "a"}, "rollback": {"name": "r.sql", "sha256": "b"}},
            **manifest_extra}
    manifest = Manifest.from_dict(data, "manifest.json")
    assert manifest.expands == tuple(manifest_extra.get("expands", ()))
    assert manifest.contracts == tuple(manifest_extra.get("contracts", ()))
    assert ("expands" in manifest.to_dict()) == bool(manifest_extra)


TABLE_SPEC_001 = textwrap.dedent('''
    from dbdeploy import Column, CreateTable, ForeignKey, Index, Migration, Unique
    migration = Migration(version="001", name="members", operations=[
        CreateTable(table="public.members", columns=[Column(name="id", type="bigint", nullable=False),
                                                     Column(name="handle", type="text", nullable=False, default="'x'")],
                    primary_key=["id"], indexes=[Index(columns=["handle"])],
                    uniques=[Unique(columns=["handle", "id"])]),
        CreateTable(table="public.posts", columns=[Column(name="id", type="bigint", nullable=False),
                                                   Column(name="member_id", type="bigint")], primary_key=["id"],
                    foreign_keys=[ForeignKey(columns=["member_id"], references="public.members", ref_columns=["id"])],
                    indexes=[Index(columns=["member_id"])])])
''')
TABLE_SPEC_002 = textwrap.dedent('''
    from dbdeploy import Migration, RenameTable
    migration = Migration(version="002", name="expand", operations=[
        RenameTable(table="public.members", new_name="public.people", online=True)])
''')


def test_verify_passes_while_a_table_expansion_is_open_and_after_its_contract(fresh_db: TestDatabase,
                                                                             tmp_path: Path):
    """The earlier version's expectations of the old name (typed columns, its primary key, a foreign key
    onto it) are not checked against the view: the expansion redefines them as the view shows them."""
    specs = tmp_path / "specs"
    write_spec(specs, "V001__members.py", TABLE_SPEC_001)
    write_spec(specs, "V002__expand.py", TABLE_SPEC_002)
    project = make_project(tmp_path / "project", fresh_db.dsn, specs=specs)
    assert project.run("apply", "--env", "test").returncode == 0
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr

    write_spec(project.root / "specs", "V003__contract.py", SPEC_003)
    assert project.run("generate").returncode == 0
    assert project.run("apply", "--env", "test").returncode == 0
    assert not relation_exists(fresh_db.connect(), "public.members")
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert project.run("rollback", "--env", "test", "--to", "001").returncode == 0
    verify = project.run("verify", "--env", "test")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def _generated_tests(db: TestDatabase, folder: Path, *args: str):
    import os
    import subprocess
    import sys

    (test_file,) = folder.glob("test_*.py")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
                           str(test_file), *args], capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, DBDEPLOY_TEST_DSN=db.dsn))


@pytest.mark.parametrize("expand", [EXPAND_COLUMNS, EXPAND_TABLE, EXPAND_TYPES], ids=["column", "table", "types"])
def test_generated_tests_pass_after_expand_contract_and_their_rollbacks(fresh_db: TestDatabase, tmp_path: Path,
                                                                       expand: Migration):
    db = fresh_db
    bundles = _apply(db, tmp_path, MEMBERS, expand, CONTRACT)
    for version in ("002", "003"):
        run_sql_file(db, bundles[version].forward)
        result = _generated_tests(db, bundles[version].folder)
        assert result.returncode == 0, result.stdout
    for version in ("003", "002"):
        run_sql_file(db, bundles[version].rollback)
        result = _generated_tests(db, bundles[version].folder, "-m", "rolled_back")
        assert result.returncode == 0, result.stdout
