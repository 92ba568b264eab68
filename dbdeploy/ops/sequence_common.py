"""What CreateSequence, AlterSequence and SetSequenceValue share: the parameter fields and their SQL,
the saved-state table of the backup schema, and the catalog reads.

PostgreSQL docs, CREATE SEQUENCE / ALTER SEQUENCE: ``AS`` smallint, integer or bigint; ``INCREMENT`` not
zero; ``MINVALUE`` < ``MAXVALUE``; ``START`` and ``RESTART`` within them; ``CACHE`` at least 1. The
parameters live in ``pg_sequence`` (seqtypid, seqstart, seqincrement, seqmin, seqmax, seqcache,
seqcycle), the position in the sequence relation itself (``last_value``, ``is_called``). Locks
(measured, tests/test_step_locks.py): ``ALTER SEQUENCE`` takes SHARE ROW EXCLUSIVE on the sequence,
``setval`` ROW EXCLUSIVE, ``CREATE SEQUENCE … OWNED BY t.c`` ACCESS SHARE on ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg import sql

from dbdeploy.model.names import _split_dots, check_identifier
from dbdeploy.ops.base import PlanContext
from dbdeploy.sql import acl, ident, literal, qualified, regclass
from dbdeploy.sql.blocks import block

S = sql.SQL

SequenceType = Literal["smallint", "integer", "bigint"]
# pg_sequence.seqtypid of each type, as format_type spells it
TYPE_NAMES = {"smallint": "smallint", "integer": "integer", "bigint": "bigint"}
_TYPE_SQL = {"smallint": S("smallint"), "integer": S("integer"), "bigint": S("bigint")}
_RANGES = {"smallint": (-(2 ** 15), 2 ** 15 - 1), "integer": (-(2 ** 31), 2 ** 31 - 1),
           "bigint": (-(2 ** 63), 2 ** 63 - 1)}


@dataclass(frozen=True)
class SequenceFact:
    """What the specs said about a sequence (``SchemaState.sequences``): the parameters given (None: the
    default or unknown), the column owning it (``schema.table.column``), and who created it."""

    as_type: str | None
    start: int | None
    increment: int | None
    min_value: int | None
    max_value: int | None
    cache: int | None
    cycle: bool | None
    owned_by: str | None


def check_owned_by(value: str | None) -> str | None:
    """``schema.table.column`` (exact names) or None; ValueError (reason — fix) otherwise."""
    if value is None:
        return None
    parts = _split_dots(value)
    if len(parts) != 3:
        raise ValueError(f"owned_by {value!r} is not 'schema.table.column' — fix: name the column with its schema "
                         "and table, e.g. 'public.invoices.number'")
    schema, table, column = (check_identifier(p, w) for p, w in zip(parts, ("schema", "table", "column"),
                                                                       strict=True))
    return f"{schema}.{table}.{column}"


def check_parameters(as_type: str | None, start: int | None, increment: int | None, min_value: int | None,
                     max_value: int | None, cache: int | None, restart: int | None = None) -> None:
    """Refuse parameter values PostgreSQL would refuse (ValueError, reason — fix)."""
    if increment == 0:
        raise ValueError("increment is 0 — fix: give a positive (ascending) or negative (descending) increment")
    if cache is not None and cache < 1:
        raise ValueError(f"cache is {cache}; PostgreSQL needs at least 1 — fix: give cache=1 or more")
    low, high = _RANGES[as_type or "bigint"]
    for field, value in (("start", start), ("min_value", min_value), ("max_value", max_value),
                         ("restart", restart), ("increment", increment)):
        if value is not None and not low <= value <= high:
            raise ValueError(f"{field} {value} does not fit the sequence's type {as_type or 'bigint'} — fix: give a "
                             f"value from {low} to {high}, or another as_type")
    if min_value is not None and max_value is not None and min_value >= max_value:
        raise ValueError(f"min_value {min_value} is not below max_value {max_value} — fix: swap or correct them")
    for field, value in (("start", start), ("restart", restart)):
        if value is None:
            continue
        if min_value is not None and value < min_value:
            raise ValueError(f"{field} {value} is below min_value {min_value} — fix: start within the bounds")
        if max_value is not None and value > max_value:
            raise ValueError(f"{field} {value} is above max_value {max_value} — fix: start within the bounds")


def parameter_sql(as_type: str | None, start: int | None, increment: int | None, min_value: int | None,
                  max_value: int | None, cache: int | None, cycle: bool | None) -> list[sql.Composable]:
    """The CREATE/ALTER SEQUENCE clauses of the parameters given (integers as literals)."""
    parts: list[sql.Composable] = []
    if as_type is not None:
        parts.append(S("AS {}").format(_TYPE_SQL[as_type]))
    if increment is not None:
        parts.append(S("INCREMENT BY {}").format(literal(increment)))
    if min_value is not None:
        parts.append(S("MINVALUE {}").format(literal(min_value)))
    if max_value is not None:
        parts.append(S("MAXVALUE {}").format(literal(max_value)))
    if start is not None:
        parts.append(S("START WITH {}").format(literal(start)))
    if cache is not None:
        parts.append(S("CACHE {}").format(literal(cache)))
    if cycle is not None:
        parts.append(S("CYCLE") if cycle else S("NO CYCLE"))
    return parts


def is_sequence(name: str) -> sql.Composable:
    """The relation ``name`` exists and is a sequence."""
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = {rel} AND c.relkind = 'S')").format(
        rel=regclass(name))


def owner_column(name: str) -> sql.Composable:
    """``schema.table.column`` of the column owning sequence ``name`` (OWNED BY, a serial or identity
    column; ``pg_depend`` deptype a or i), spelled with exact names like the specs; NULL when none."""
    return S("(SELECT n.nspname || '.' || r.relname || '.' || a.attname FROM pg_catalog.pg_depend d\n"
             "    JOIN pg_catalog.pg_class r ON r.oid = d.refobjid\n"
             "    JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace\n"
             "    JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid\n"
             "    WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = {rel}\n"
             "      AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.deptype IN ('a', 'i'))").format(
        rel=regclass(name))


def saved_sequences_table(ctx: PlanContext) -> sql.Identifier:
    """``<backup schema>.saved_sequences``: per version, operation kind and sequence, its parameters
    and position before the version's first change (AlterSequence, SetSequenceValue)."""
    return ident(ctx.backup_schema, "saved_sequences")


def create_saved_table(ctx: PlanContext) -> sql.Composable:
    """Create :func:`saved_sequences_table` (idempotent) and close it to every role but the deployer's."""
    saved = saved_sequences_table(ctx)
    return block(
        S("CREATE TABLE IF NOT EXISTS {saved} (\n"
          "    version text NOT NULL, operation text NOT NULL, sequence_name text NOT NULL,\n"
          "    type_name text NOT NULL, start_value bigint NOT NULL, increment_by bigint NOT NULL,\n"
          "    min_value bigint NOT NULL, max_value bigint NOT NULL, cache_size bigint NOT NULL,\n"
          "    cycle boolean NOT NULL, last_value bigint NOT NULL, is_called boolean NOT NULL,\n"
          "    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now(),\n"
          "    PRIMARY KEY (version, operation, sequence_name)\n"
          ");").format(saved=saved),
        acl.restrict_table(saved),
    )


def save_state(ctx: PlanContext, operation: str, name: str) -> sql.Composable:
    """Insert the sequence's parameters and position into the saved table unless this version's
    ``operation`` saved them already (a re-run keeps the first run's row); ``v_rows`` is 1 on the
    first run, 0 on a re-run."""
    return block(
        create_saved_table(ctx),
        S("INSERT INTO {saved} (version, operation, sequence_name, type_name, start_value, increment_by, min_value,\n"
          "    max_value, cache_size, cycle, last_value, is_called)\n"
          "SELECT {v}, {op}, {n}, pg_catalog.format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin,\n"
          "    s.seqmax, s.seqcache, s.seqcycle, q.last_value, q.is_called\n"
          "FROM pg_catalog.pg_sequence s, {seq} q WHERE s.seqrelid = {rel}\n"
          "ON CONFLICT DO NOTHING;").format(
            saved=saved_sequences_table(ctx), v=literal(ctx.version), op=literal(operation), n=literal(name),
            seq=qualified(name), rel=regclass(name)),
        S("GET DIAGNOSTICS v_rows = ROW_COUNT;"),
    )


def saved_where(ctx: PlanContext, operation: str, name: str) -> sql.Composable:
    return S("version = {v} AND operation = {op} AND sequence_name = {n}").format(
        v=literal(ctx.version), op=literal(operation), n=literal(name))


def saved_row_exists(ctx: PlanContext, operation: str, name: str) -> sql.Composable:
    return S("EXISTS (SELECT 1 FROM {saved} WHERE {w})").format(
        saved=saved_sequences_table(ctx), w=saved_where(ctx, operation, name))


def saved_table_missing(ctx: PlanContext) -> sql.Composable:
    return S("{} IS NULL").format(regclass(saved_sequences_table(ctx)))
