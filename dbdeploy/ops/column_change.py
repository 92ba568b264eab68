"""What SetNotNull, DropNotNull, SetDefault and DropDefault share: the column the specs know (if
any), its state as they record it, and the refusal of a change to a column the same migration
creates (say it in the Column instead)."""

from __future__ import annotations

from dataclasses import replace

from dbdeploy.model.components import Column
from dbdeploy.ops.base import PlanContext, SchemaState

# Types whose columns PostgreSQL makes NOT NULL with a sequence default (CREATE TABLE docs, "serial").
SERIAL_TYPES = frozenset({"smallserial", "serial", "bigserial", "serial2", "serial4", "serial8"})


def known_column(state: SchemaState, table: str, column: str, what: str) -> Column | None:
    """The spec's Column ``table.column``, or None when the specs did not create ``table``. Raises
    ValueError (reason — fix) when they did and it has no such column; ``what`` names the operation."""
    known = state.tables.get(table)
    if known is None:
        return None
    state.require_columns(table, [column], f"{what}.column")
    return known.columns[column]


def trusted(state: SchemaState, table: str) -> bool:
    """Whether what the specs say about ``table`` is the whole truth: they created it and no RawSQL
    mentions it (``SchemaState.raw_changed``)."""
    return table in state.tables and table not in state.raw_changed


def spec_not_null(state: SchemaState, table: str, column: str) -> bool | None:
    """Whether the specs make ``table.column`` NOT NULL (nullable=False, primary key, identity, a
    serial type); None when they cannot tell (:func:`trusted`)."""
    if not trusted(state, table) or column not in state.tables[table].columns:
        return None
    col = state.tables[table].columns[column]
    return (not col.nullable or col.identity or column in state.tables[table].primary_key
            or str(col.type).lower() in SERIAL_TYPES)


def replace_column(state: SchemaState, table: str, column: str, **changes) -> None:
    """Record ``changes`` (Column fields) of ``table.column`` when the specs know the table (the
    TableState is replaced, never changed in place: SchemaState.copy is shallow)."""
    known = state.tables.get(table)
    if known is None or column not in known.columns:
        return
    updated = known.columns[column].model_copy(update=changes)
    state.tables[table] = replace(known, columns={**known.columns, column: updated})


def refuse_new_column(ctx: PlanContext, table: str, column: str, operation: str, fix: str) -> None:
    """Raise ValueError when ``table.column`` is created by this same migration (CreateTable or
    AddColumn): its expectations would contradict each other and its rollback drops it anyway."""
    if table in ctx.rollback_drops or f"{table}.{column}" in ctx.rollback_drops_columns:
        raise ValueError(f"{operation} changes {table}.{column}, which this same migration creates — fix: {fix}")
