"""The machinery every batched step shares: Backfill's forward and restore, DropColumn's copy and restore.

A batched operation moves its rows in many short transactions instead of one long one, so row
locks are held for one batch at a time. Each of them is built from the same pieces:

- a one-row **cursor table** in the backup schema: the first key not yet done plus counters
  (``dbdeploy_…_done``, ``dbdeploy_batches_done``), updated by the batch statement itself, so it
  commits with the batch and a killed run resumes at the first row not yet done
  (:func:`cursor_table`);
- a **batch function** ``fn(p_rows bigint)`` in the backup schema, owned by the deploying role,
  ``search_path`` pinned to ``pg_catalog, pg_temp``, EXECUTE revoked from PUBLIC, returning
  ``(rows_seen, <counted>)`` for one batch of at most ``p_rows`` rows; ``rows_seen = 0`` means the
  cursor is past the last key (:func:`create_batch_function`, :func:`batch_function_head`); a
  **no-op** one when there is nothing to do, so the batch step runs the same under psql and the
  executor (:func:`noop_batch_function`);
- the **batch step**: a DO block whose loop runs the one batch statement between the
  ``-- dbdeploy:batch-begin rows=N`` / ``-- dbdeploy:batch-end`` markers (:mod:`dbdeploy.bundle.markers`)
  and commits after each batch; the executor extracts that statement and loops it itself
  (:func:`batch_loop`).

Batches are bounded by time, not by a fixed row count (as pt-online-schema-change's ``--chunk-time``):
the batch statement takes its row count from the setting ``dbdeploy.batch_rows``
(:data:`BATCH_ROWS`), which the loop sets before each batch. It starts at the spec's ``batch_size``
(the upper bound) and, after each batch measured up to its commit, halves (at least 1) when the batch
took longer than the target ``batch_time`` and doubles (at most ``batch_size``) when it took less than
a quarter of it (:func:`dbdeploy.bundle.markers.next_batch_rows`; the PL/pgSQL loop measures with
``clock_timestamp()``, the executor with ``time.monotonic()``). A writer that needs a row of the batch
in flight so waits about ``batch_time`` at most, unless a single row takes longer than that.
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.bundle.markers import (
    BATCH_BEGIN,
    BATCH_END,
    BATCH_ROWS_SETTING,
    BATCH_TIME_SETTING,
    DEFAULT_BATCH_TIME,
)
from dbdeploy.ops.common import S
from dbdeploy.sql import acl, literal, render
from dbdeploy.sql.blocks import block, do_block, if_then, indented

# What every batch function and the no-op one run with: built-ins only, nothing from a temporary schema.
FUNCTION_SETTINGS = "SET search_path = pg_catalog, pg_temp"
# The row count of the batch in flight, as the batch statement reads it (set by the loop before each
# batch; an error, never a default, when it is not set: the statement runs only inside the loop contract).
BATCH_ROWS = S("pg_catalog.current_setting({})::pg_catalog.int8").format(literal(BATCH_ROWS_SETTING))
# The batch function's parameter inside its body: positional, so a table column named p_rows cannot shadow it.
ROWS_PARAMETER = S("$1")


# dbdeploy's own column names and the batch functions' languages, as SQL: a name is looked up here
# (KeyError for any other), so no str becomes SQL.
_NAMES = {
    "dbdeploy_rows_done": S("dbdeploy_rows_done"), "dbdeploy_batches_done": S("dbdeploy_batches_done"),
    "dbdeploy_rows_restored": S("dbdeploy_rows_restored"), "dbdeploy_rows_kept": S("dbdeploy_rows_kept"),
    "dbdeploy_rows_defaulted": S("dbdeploy_rows_defaulted"), "rows_copied": S("rows_copied"),
    "rows_restored": S("rows_restored"),
}
_LANGUAGES = {"sql": S("sql"), "plpgsql": S("plpgsql")}


def cursor_table(cursor: sql.Identifier, counters: list[str], *, create: sql.Composable) -> list[sql.Composable]:
    """PL/pgSQL statements that create the cursor table ``cursor``: ``create`` (a statement that
    creates it with the key columns holding the first key, no row when there is none), then one
    ``bigint NOT NULL DEFAULT 0`` column per name in ``counters`` (e.g. ``dbdeploy_rows_done``,
    ``dbdeploy_batches_done``), its one row (all keys NULL when the source is empty: nothing to do)
    and the ACL owner + backup readers (:func:`dbdeploy.sql.acl.restrict_table`)."""
    return [
        create,
        S("ALTER TABLE {p} {columns};").format(p=cursor, columns=S(", ").join(
            S("ADD COLUMN {} bigint NOT NULL DEFAULT 0").format(_NAMES[c]) for c in counters)),
        if_then(S("NOT EXISTS (SELECT 1 FROM {})").format(cursor), S("INSERT INTO {} DEFAULT VALUES;").format(cursor)),
        acl.restrict_table(cursor),
    ]


def signature(fn: sql.Identifier) -> sql.Composable:
    """``fn(bigint)``: a batch function as DROP, REVOKE and ``to_regprocedure`` name it."""
    return S("{}(bigint)").format(fn)


def batch_function_head(fn: sql.Identifier, out: str, language: str) -> sql.Composable:
    """``CREATE FUNCTION fn(p_rows bigint) RETURNS TABLE (rows_seen bigint, <out> bigint) LANGUAGE
    <language> SET search_path = pg_catalog, pg_temp AS `` — the head of a batch function, its body to
    follow (a literal, or ``%L`` in a ``format()`` template; the body reads ``p_rows`` as ``$1``,
    :data:`ROWS_PARAMETER`). ``out`` is a constant column name of dbdeploy's (``rows_copied`` …);
    ``language`` is ``sql`` or ``plpgsql``."""
    return S("CREATE FUNCTION {fn}(p_rows bigint) RETURNS TABLE (rows_seen bigint, {out} bigint) LANGUAGE {lang}"
             " {settings} AS ").format(fn=fn, out=_NAMES[out], lang=_LANGUAGES[language], settings=S(FUNCTION_SETTINGS))


def revoke_batch_function(fn: sql.Identifier) -> sql.Composable:
    """``REVOKE ALL ON FUNCTION fn(bigint) FROM PUBLIC``: only the owner (the deploying role) runs it."""
    return S("REVOKE ALL ON FUNCTION {} FROM PUBLIC;").format(signature(fn))


def drop_batch_function(fn: sql.Identifier) -> sql.Composable:
    """Drop the batch function ``fn`` if it exists, also in the form without the row count parameter
    (``fn()``) that an older dbdeploy created (a drop or restore it began, finished by this version)."""
    return block(S("DROP FUNCTION IF EXISTS {};").format(signature(fn)), S("DROP FUNCTION IF EXISTS {}();").format(fn))


def call_batch_function(fn: sql.Identifier, out: str) -> sql.Composable:
    """The batch statement of a step that calls ``fn``: ``SELECT rows_seen, <out> FROM fn(<rows>)``
    with the row count the loop set (:data:`BATCH_ROWS`)."""
    return S("SELECT rows_seen, {out} FROM {fn}({rows})").format(out=_NAMES[out], fn=fn, rows=BATCH_ROWS)


def create_batch_function(fn: sql.Identifier, out: str, language: str, body: sql.Composable) -> sql.Composable:
    """The batch function ``fn`` with the SQL text ``body`` (rendered and quoted as a literal), EXECUTE
    revoked from PUBLIC (:func:`batch_function_head`)."""
    return block(S("{head}{body};").format(head=batch_function_head(fn, out, language), body=literal(render(body))),
                 revoke_batch_function(fn))


def noop_batch_function(fn: sql.Identifier, out: str) -> sql.Composable:
    """PL/pgSQL: unless ``fn(bigint)`` exists, create it as a batch function that reports nothing to do
    (``0, 0``), so the batch step that calls it by its bundle name runs under psql and the executor."""
    return if_then(S("pg_catalog.to_regprocedure({}) IS NULL").format(literal(render(signature(fn)))),
                   S("{head}'SELECT 0::bigint, 0::bigint';").format(head=batch_function_head(fn, out, "sql")),
                   revoke_batch_function(fn))


def batch_loop(statement: sql.Composable, max_rows: int) -> str:
    """The DO block of a batch step: run ``statement`` (one batch of at most :data:`BATCH_ROWS` rows,
    returning ``rows_seen`` and a count) between the batch markers, stop when it saw no row, COMMIT
    after each batch, and size the next batch by how long this one took up to its commit
    (``clock_timestamp()``): halve when longer than the target, double (at most ``max_rows``, the
    spec's ``batch_size``) when shorter than a quarter of it — the same rule as the executor's loop
    (:func:`dbdeploy.bundle.markers.next_batch_rows`). The target is the session's
    ``dbdeploy.batch_time`` (an interval), 50 ms when unset; ``0`` keeps every batch at ``max_rows``.

    The statement is indented between tokens only (:func:`dbdeploy.sql.psql.indent`): a value
    spanning lines keeps its bytes, and the executor, which runs the text between the markers,
    sends exactly what PL/pgSQL runs; the begin marker carries ``max_rows`` for the executor. The
    block resolves a name that is both a column and one of its variables (a spec's ``where`` on a
    column named ``v_rows``) as the column (``#variable_conflict use_column``), as the executor's
    run of the statement alone does."""
    rows = literal(BATCH_ROWS_SETTING)
    body = S("\n").join([
        S("LOOP"),
        S("    PERFORM pg_catalog.set_config({}, v_batch_rows::pg_catalog.text, false);").format(rows),
        S("    v_started := pg_catalog.clock_timestamp();"),
        S("    " + BATCH_BEGIN + " rows={}").format(literal(int(max_rows))),
        indented(statement),
        S("    " + BATCH_END),
        S("    INTO v_rows, v_changed;\n"
          "    EXIT WHEN v_rows = 0;\n"
          "    COMMIT;\n"
          "    v_took := pg_catalog.clock_timestamp() - v_started;\n"
          "    IF v_target > interval '0' AND v_took > v_target THEN\n"
          "        v_batch_rows := GREATEST(v_batch_rows / 2, 1);\n"
          "    ELSIF v_took < v_target / 4 THEN\n"
          "        v_batch_rows := LEAST(v_batch_rows * 2, v_max_rows);\n"
          "    END IF;\n"
          "END LOOP;"),
    ])
    target = S("COALESCE(NULLIF(pg_catalog.current_setting({}, true), ''), {})::interval").format(
        literal(BATCH_TIME_SETTING), literal(DEFAULT_BATCH_TIME))
    return do_block(body, declare=["v_rows bigint", "v_changed bigint",
                                   S("v_max_rows bigint := {}").format(literal(int(max_rows))),
                                   S("v_batch_rows bigint := {}").format(literal(int(max_rows))),
                                   S("v_target interval := {}").format(target),
                                   "v_started timestamptz", "v_took interval"], use_column=True)


__all__ = ["BATCH_ROWS", "ROWS_PARAMETER", "batch_function_head", "batch_loop", "call_batch_function",
           "create_batch_function", "cursor_table", "drop_batch_function", "noop_batch_function",
           "revoke_batch_function", "signature"]
