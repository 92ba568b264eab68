"""Batches bounded by time: the rows per batch adapt to ``batch_time`` (README "Batches bounded by time").

Every batched step — Backfill's forward and its rollback's restore, DropColumn's copy and its
rollback's restore — starts at the spec's ``batch_size``, halves the row count after a batch that
took longer than the target and doubles it (at most ``batch_size``) after one that took less than a
quarter of it: the executor's loop and the bundle's PL/pgSQL loop (psql) alike.

Slow rows: the backfill's SET calls a volatile function that sleeps 1 ms per row, and before the
rollback the application's table gets a BEFORE UPDATE trigger that does the same, so every row the
two restores write back costs at least that too. With ``batch_size`` 1000 on 3,000 rows and the
default 50 ms target (psql: the bundle's default; executor: ``batch_time = "50ms"``), the first
batch takes over a second, the row count halves until a batch fits, so each of these steps runs
MORE batches than ``ceil(rows / batch_size)`` — and every value still ends where it belongs.
DropColumn's copy writes only into dbdeploy's own values table (no trigger, no coercion of the
application's to run), so its rows cannot be made slow from outside; it is run against a 1 ms
target instead, which no 1000-row batch meets. With fast rows and a target far above what a batch
takes, every batch of every step has ``batch_size`` rows (exactly ``ceil(rows / batch_size)``).
Batch counts come from the cursor tables (forward) and from the restores' NOTICEs (their cursor
tables are dropped at the end of the rollback).

Nothing here asserts a duration: only batch counts and data.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from dbdeploy.executor.config import Environment
from tests.executor_support import make_project, write_spec

ROWS = 3_000
BATCH = 1_000

SLOW_FUNCTION = """
CREATE FUNCTION public.slow_label(bigint) RETURNS text LANGUAGE sql VOLATILE
    AS $$ SELECT 'v' || $1 FROM (SELECT pg_catalog.pg_sleep(0.001)) AS s $$;
"""
SLOW_TRIGGER = """
CREATE FUNCTION public.slow_row() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN PERFORM pg_catalog.pg_sleep(0.001); RETURN NEW; END $$;
CREATE TRIGGER items_slow BEFORE UPDATE ON public.items FOR EACH ROW EXECUTE FUNCTION public.slow_row();
"""

SPEC = '''
from dbdeploy import Backfill, Column, CreateTable, DropColumn, Migration
first = Migration(version="001", name="items", operations=[CreateTable(
    table="public.items", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="label", type="text"), Column(name="code", type="text")])])
second = Migration(version="002", name="new_labels", operations=[
    Backfill(table="public.items", set={"label": "LABEL"}, batch_size=BATCH)])
third = Migration(version="003", name="drop_code", operations=[
    DropColumn(table="public.items", column="code", batch_size=BATCH)])
'''

POPULATE = (f"INSERT INTO public.items (id, label, code) SELECT g, 'old ' || g, 'c' || g"
            f" FROM generate_series(1, {ROWS}) g")
SELECT_ROWS = "SELECT id, label, code FROM public.items ORDER BY id"

BACKFILL_RESTORED = re.compile(r"backfill of public\.items: restored the values before the deploy in (\d+) row\(s\);"
                               r".*?; (\d+) batch\(es\)")
COLUMN_RESTORED = re.compile(r"restored column public\.items\.code: the saved values of (\d+) row\(s\) put back;"
                             r".*?; (\d+) batch\(es\)")


def _project(tmp_path: Path, db, label: str, batch_time: str):
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_spec.py", SPEC.replace("LABEL", label).replace("BATCH", str(BATCH)))
    return make_project(tmp_path / "p", db.dsn, specs=specs, extra_env=f'batch_time = "{batch_time}"\n')


def _ok(result) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _file(project, version: str, rollback: bool) -> Path:
    pattern = f"V{version}__*/V{version}__rollback_*.sql" if rollback else f"V{version}__*/V{version}__[!r]*.sql"
    return next(project.generated.glob(pattern))


def _cursor(db, like: str) -> tuple[int, int]:
    """(rows done, batches done) of the one cursor table in dbdeploy_backup whose name matches ``like``."""
    names = db.execute("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
                       " ON n.oid = c.relnamespace WHERE n.nspname = 'dbdeploy_backup' AND c.relname LIKE %s",
                       [like])
    assert len(names) == 1, names
    return db.execute(f'SELECT dbdeploy_rows_done, dbdeploy_batches_done FROM dbdeploy_backup."{names[0][0]}"')[0]


def _deploy_and_roll_back(db, project, path: str, before_rollback: str = "") -> tuple[dict, dict]:
    """V001 by the executor, then V002 (Backfill) and V003 (DropColumn) forward and back through
    ``path`` (``before_rollback``: SQL run in between); checks the data at each point. Returns the
    rows and the batches of the four batched steps."""
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute(POPULATE)
    db.execute("ANALYZE public.items")
    before = db.execute(SELECT_ROWS)
    if path == "executor":
        _ok(project.run("apply", "--env", "test", "--plain"))
    else:
        db.psql_file(_file(project, "002", rollback=False))
        db.psql_file(_file(project, "003", rollback=False))
    assert db.execute("SELECT id, label FROM public.items ORDER BY id") == [(i, f"v{i}") for i in range(1, ROWS + 1)]
    assert db.execute("SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = 'public.items'::regclass"
                      " AND attname = 'code' AND NOT attisdropped") == [(0,)]
    rows, batches = {}, {}
    rows["backfill"], batches["backfill"] = _cursor(db, "v002%items_progress")
    rows["copy"], batches["copy"] = _cursor(db, "%code_progress")
    assert db.execute("SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid ="
                      " c.relnamespace WHERE n.nspname = 'dbdeploy_backup' AND c.relname LIKE '%code'") == [(1,)]
    if before_rollback:
        db.execute(before_rollback)
    if path == "executor":
        out = _ok(project.run("rollback", "--env", "test", "--to", "1", "--plain"))
    else:
        out = db.psql_file(_file(project, "003", rollback=True)).stderr
        out += db.psql_file(_file(project, "002", rollback=True)).stderr
    assert db.execute(SELECT_ROWS) == before, "the rollback restores every value"
    [(put, put_batches)] = COLUMN_RESTORED.findall(out)
    [(restored, restored_batches)] = BACKFILL_RESTORED.findall(out)
    rows["put"], batches["put"] = int(put), int(put_batches)
    rows["restore"], batches["restore"] = int(restored), int(restored_batches)
    return rows, batches


@pytest.mark.parametrize("path", ["executor", "psql"])
def test_slow_rows_shrink_the_batches_and_every_value_lands(fresh_db, tmp_path, path) -> None:
    """Rows that take ≥ 1 ms each against a 50 ms target: the 1000-row first batch takes far longer,
    so the row count halves and the backfill and both restores run more than ceil(rows / batch_size)
    batches. Under psql the target is the bundle's default (no dbdeploy.batch_time set)."""
    db = fresh_db
    db.execute(SLOW_FUNCTION)
    project = _project(tmp_path, db, "public.slow_label(id)", "50ms")
    forward = _file(project, "002", rollback=False).read_text()
    assert "-- dbdeploy:batch-begin rows=1000" in forward
    assert "'dbdeploy.batch_time', true), ''), '50ms')" in forward
    rows, batches = _deploy_and_roll_back(db, project, path, before_rollback=SLOW_TRIGGER)
    assert rows == {"backfill": ROWS, "copy": ROWS, "put": ROWS, "restore": ROWS}
    for step in ("backfill", "put", "restore"):
        assert batches[step] > math.ceil(ROWS / BATCH), (step, batches)


@pytest.mark.parametrize("path", ["executor", "psql"])
def test_copy_batches_follow_the_target(fresh_db, tmp_path, path, monkeypatch) -> None:
    """DropColumn's copy against a 1 ms target (config and, for psql, the session setting): no
    1000-row batch copies in 1 ms, so the copy runs more than ceil(rows / batch_size) batches, and
    the values table holds every value."""
    db = fresh_db
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=1ms")
    project = _project(tmp_path, db, "'v' || id", "1ms")
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute(POPULATE)
    if path == "executor":
        _ok(project.run("apply", "--env", "test", "--plain"))
    else:
        db.psql_file(_file(project, "002", rollback=False))
        db.psql_file(_file(project, "003", rollback=False))
    rows, batches = _cursor(db, "%code_progress")
    assert rows == ROWS and batches > math.ceil(ROWS / BATCH), (rows, batches)
    [(saved,)] = db.execute("SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid ="
                            " c.relnamespace WHERE n.nspname = 'dbdeploy_backup' AND c.relname LIKE '%code'")
    assert db.execute(f'SELECT id, code FROM dbdeploy_backup."{saved}" ORDER BY id') == [
        (i, f"c{i}") for i in range(1, ROWS + 1)]


@pytest.mark.parametrize("path", ["executor", "psql"])
def test_fast_batches_keep_batch_size(fresh_db, tmp_path, path, monkeypatch) -> None:
    """Plain text rows and a target of a minute: no batch comes near it, so every batch has
    batch_size rows — exactly ceil(rows / batch_size) batches per step. Under psql the target comes
    from the session setting dbdeploy.batch_time (PGOPTIONS), as an operator would set it."""
    db = fresh_db
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=60s")
    project = _project(tmp_path, db, "'v' || id", "60s")
    rows, batches = _deploy_and_roll_back(db, project, path)
    assert rows == {"backfill": ROWS, "copy": ROWS, "put": ROWS, "restore": ROWS}
    assert batches == dict.fromkeys(rows, math.ceil(ROWS / BATCH))


def test_psql_reads_the_target_from_the_session(fresh_db, tmp_path, monkeypatch) -> None:
    """The same slow rows under psql with dbdeploy.batch_time = 0 (no time bound): every batch has
    batch_size rows, so the bundle's loop reads the target from the session, not a constant."""
    db = fresh_db
    db.execute(SLOW_FUNCTION)
    monkeypatch.setenv("PGOPTIONS", "-c dbdeploy.batch_time=0")
    project = _project(tmp_path, db, "public.slow_label(id)", "0")
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute(POPULATE)
    db.psql_file(_file(project, "002", rollback=False))
    assert _cursor(db, "v002%items_progress") == (ROWS, math.ceil(ROWS / BATCH))
    assert db.execute("SELECT count(*) FROM public.items WHERE label = 'v' || id") == [(ROWS,)]


def test_batch_time_defaults_to_half_of_lock_timeout(tmp_path) -> None:
    """``batch_time`` in dbdeploy.toml: a duration like the other keys; unset, half of lock_timeout."""
    from dbdeploy.errors import ConfigError
    from dbdeploy.executor.config import load_config

    def env(extra: str) -> Environment:
        (tmp_path / "dbdeploy.toml").write_text(f'[environments.x]\ndsn = "host=h"\n{extra}')
        return load_config(tmp_path).environment("x")

    assert env("").batch_seconds == pytest.approx(0.05)
    assert env('lock_timeout = "2s"\n').batch_seconds == pytest.approx(1.0)
    assert env('lock_timeout = "2s"\nbatch_time = "200ms"\n').batch_seconds == pytest.approx(0.2)
    assert env('batch_time = "0"\n').batch_seconds == 0
    with pytest.raises(ConfigError, match="batch_time"):
        env('batch_time = "fast"\n')


@pytest.mark.parametrize(("rows", "took", "target", "expected"), [
    (1000, 0.2, 0.05, 500),      # slower than the target: half
    (1, 0.2, 0.05, 1),           # never below one row
    (500, 0.01, 0.05, 1000),     # under a quarter of the target: double
    (800, 0.01, 0.05, 1000),     # ... at most batch_size
    (500, 0.03, 0.05, 500),      # between a quarter and the target: the same
    (500, 9.0, 0, 500),          # target 0: fixed size
])
def test_the_executor_sizes_the_next_batch_by_the_rule(rows, took, target, expected) -> None:
    """The rule the executor applies after each batch (the bundle's PL/pgSQL loop has the same), for
    batch_size 1000."""
    from dbdeploy.bundle.markers import next_batch_rows

    assert next_batch_rows(rows, took, target, 1000) == expected


def test_a_batch_marker_without_rows_is_read_as_a_fixed_size_batch() -> None:
    """A bundle written by an older dbdeploy (``-- dbdeploy:batch-begin`` with no ``rows=``, the row
    count in its SQL) is still read: the executor then sets no row count and never resizes."""
    from dbdeploy.bundle.markers import parse_steps

    text = ("-- dbdeploy:preamble\nSET lock_timeout = '5s';\n"
            "-- dbdeploy:step 1 backfill tx=none lock=ROW EXCLUSIVE target=public.t\n-- old\n"
            "DO $dbdeploy$\nDECLARE\n    v_rows bigint;\n    v_changed bigint;\nBEGIN\n    LOOP\n"
            "        -- dbdeploy:batch-begin\n        SELECT 0::bigint, 0::bigint\n        -- dbdeploy:batch-end\n"
            "        INTO v_rows, v_changed;\n        EXIT WHEN v_rows = 0;\n        COMMIT;\n    END LOOP;\nEND\n"
            "$dbdeploy$;\n-- dbdeploy:postamble\nSELECT 1;\n")
    _, [step], _ = parse_steps(text)
    assert (step.batch, step.batch_rows) == ("SELECT 0::bigint, 0::bigint", None)
    new = text.replace("-- dbdeploy:batch-begin\n", "-- dbdeploy:batch-begin rows=250\n")
    _, [step], _ = parse_steps(new)
    assert (step.batch, step.batch_rows) == ("SELECT 0::bigint, 0::bigint", 250)


def test_a_column_named_like_a_loop_variable_means_the_column_under_psql(fresh_db, tmp_path) -> None:
    """The batch loop's DO block resolves a name that is both a column and one of its variables as the
    column (``#variable_conflict use_column``), as the executor's run of the batch statement alone
    does: a Backfill whose ``where`` and ``set`` name columns ``v_rows`` and ``v_started`` runs under psql
    (without it, PL/pgSQL refuses the statement as ambiguous)."""
    db = fresh_db
    specs = tmp_path / "specs_src"
    write_spec(specs, "V001_spec.py", '''
from dbdeploy import Backfill, Column, CreateTable, Migration
first = Migration(version="001", name="t", operations=[CreateTable(
    table="public.t", primary_key=["id"],
    columns=[Column(name="id", type="bigint"), Column(name="v_rows", type="bigint"),
             Column(name="v_started", type="text")])])
second = Migration(version="002", name="fill", operations=[
    Backfill(table="public.t", set={"v_started": "'x' || v_rows"}, where="v_rows IS NOT NULL", batch_size=7)])
''')
    project = make_project(tmp_path / "p", db.dsn, specs=specs)
    _ok(project.run("apply", "--env", "test", "--to", "1"))
    db.execute("INSERT INTO public.t SELECT g, CASE WHEN g % 5 = 0 THEN NULL ELSE g * 10 END"
               " FROM generate_series(1, 40) g")
    db.psql_file(_file(project, "002", rollback=False))
    assert db.execute("SELECT id, v_started FROM public.t ORDER BY id") == [
        (i, None if i % 5 == 0 else f"x{i * 10}") for i in range(1, 41)]
