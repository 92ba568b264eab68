"""The machinery every batched step shares: Backfill's forward and restore, DropColumn's copy and restore.

A batched operation moves its rows in many short transactions instead of one long one, so row
locks are held for one batch at a time. Each of them is built from the same pieces:

- a one-row **cursor table** in the backup schema: the first key not yet done plus counters
  (``dbdeploy_…_done``, ``dbdeploy_batches_done``), updated by the batch statement itself, so it
  commits with the batch and a killed run resumes at the first row not yet done
  (:func:`cursor_table`);
- a **batch function** in the backup schema, owned by the deploying role, ``search_path`` pinned to
  ``pg_catalog, pg_temp``, EXECUTE revoked from PUBLIC, returning ``(rows_seen, <counted>)`` for one
  batch; ``rows_seen = 0`` means the cursor is past the last key (:func:`create_batch_function`,
  :func:`batch_function_head`); a **no-op** one when there is nothing to do, so the batch step runs
  the same under psql and the executor (:func:`noop_batch_function`);
- the **batch step**: a DO block whose loop runs the one batch statement between the
  ``-- dbdeploy:batch-begin/-end`` markers (:mod:`dbdeploy.render.markers`) and commits after each
  batch; the executor extracts that statement and loops it itself (:func:`batch_loop`).
"""

from __future__ import annotations

from psycopg import sql

from dbdeploy.ops.common import S, block, do_block, if_then
from dbdeploy.render.markers import BATCH_BEGIN, BATCH_END
from dbdeploy.sql import acl, literal, render
from dbdeploy.sql.psql import indent

# What every batch function and the no-op one run with: built-ins only, nothing from a temporary schema.
FUNCTION_SETTINGS = "SET search_path = pg_catalog, pg_temp"


def cursor_table(cursor: sql.Identifier, counters: list[str], *, create: sql.Composable) -> list[sql.Composable]:
    """PL/pgSQL statements that create the cursor table ``cursor``: ``create`` (a statement that
    creates it with the key columns holding the first key, no row when there is none), then one
    ``bigint NOT NULL DEFAULT 0`` column per name in ``counters`` (e.g. ``dbdeploy_rows_done``,
    ``dbdeploy_batches_done``), its one row (all keys NULL when the source is empty: nothing to do)
    and the ACL owner + backup readers (:func:`dbdeploy.sql.acl.restrict_table`)."""
    return [
        create,
        S("ALTER TABLE {p} {columns};").format(p=cursor, columns=S(", ").join(
            S("ADD COLUMN {} bigint NOT NULL DEFAULT 0").format(S(c)) for c in counters)),
        if_then(S("NOT EXISTS (SELECT 1 FROM {})").format(cursor), S("INSERT INTO {} DEFAULT VALUES;").format(cursor)),
        acl.restrict_table(cursor),
    ]


def batch_function_head(fn: sql.Identifier, out: sql.Composable, language: str) -> sql.Composable:
    """``CREATE FUNCTION fn() RETURNS TABLE (rows_seen bigint, <out> bigint) LANGUAGE <language>
    SET search_path = pg_catalog, pg_temp AS `` — the head of a batch function, its body to follow
    (a literal, or ``%L`` in a ``format()`` template). ``language`` is ``sql`` or ``plpgsql``."""
    return S("CREATE FUNCTION {fn}() RETURNS TABLE (rows_seen bigint, {out} bigint) LANGUAGE {lang} {settings} AS "
             ).format(fn=fn, out=out, lang=S(language), settings=S(FUNCTION_SETTINGS))


def revoke_batch_function(fn: sql.Identifier) -> sql.Composable:
    """``REVOKE ALL ON FUNCTION fn() FROM PUBLIC``: only the owner (the deploying role) runs it."""
    return S("REVOKE ALL ON FUNCTION {}() FROM PUBLIC;").format(fn)


def create_batch_function(fn: sql.Identifier, out: sql.Composable, language: str,
                          body: sql.Composable) -> sql.Composable:
    """The batch function ``fn`` with the SQL text ``body`` (rendered and quoted as a literal), EXECUTE
    revoked from PUBLIC (:func:`batch_function_head`)."""
    return block(S("{head}{body};").format(head=batch_function_head(fn, out, language), body=literal(render(body))),
                 revoke_batch_function(fn))


def noop_batch_function(fn: sql.Identifier, out: sql.Composable) -> sql.Composable:
    """PL/pgSQL: unless ``fn()`` exists, create it as a batch function that reports nothing to do
    (``0, 0``), so the batch step that calls it by its bundle name runs under psql and the executor."""
    return if_then(S("pg_catalog.to_regprocedure({}) IS NULL").format(literal(render(fn) + "()")),
                   S("{head}'SELECT 0::bigint, 0::bigint';").format(head=batch_function_head(fn, out, "sql")),
                   revoke_batch_function(fn))


def batch_loop(statement: str) -> str:
    """The DO block of a batch step: run ``statement`` (one batch, returning ``rows_seen`` and a
    count) between the batch markers, stop when it saw no row, COMMIT after each batch.

    The statement is indented between tokens only (:func:`dbdeploy.sql.psql.indent`): a value
    spanning lines keeps its bytes, and the executor, which runs the text between the markers,
    sends exactly what PL/pgSQL runs."""
    body = "\n".join([
        "LOOP",
        "    " + BATCH_BEGIN,
        indent(statement),
        "    " + BATCH_END,
        "    INTO v_rows, v_changed;",
        "    EXIT WHEN v_rows = 0;",
        "    COMMIT;",
        "END LOOP;",
    ])
    return do_block(body, declare=["v_rows bigint", "v_changed bigint"])


__all__ = ["batch_function_head", "batch_loop", "create_batch_function", "cursor_table", "noop_batch_function",
           "revoke_batch_function"]
