"""Queries for the deployment checklist: dependency checks, violating-row counts, health checks.

Every query returns one row with one value (or, for dependants, one row per dependant) so a DBA
can compare it with the expected result written next to it. All SQL is composed with
:mod:`psycopg.sql`: identifiers with ``ident``/``qualified``, names used as data with ``literal``;
the only text taken from specs is expressions that the spec layer already parsed and re-rendered.

Pre-deployment queries run before the migration, when the columns it adds do not exist yet and
its backfills have not run. :func:`projected` therefore rebuilds, from the earlier operations of
the migration (:class:`DataChange`), the values a column will have when an operation runs: a new
column is its default (or NULL), a backfilled column is ``CASE WHEN <where> THEN <value> ELSE
<column> END``. So "rows that would violate the CHECK on a column this migration adds and fills"
is a plain query over the table as it is today.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from psycopg import sql
from psycopg.types.json import Jsonb

from dbdeploy.ops.base import ChecklistItems, CheckQuery, ColumnValue, DataChange, PlanContext
from dbdeploy.ops.common import (
    NOT_NULL_PROVEN,
    UNVALIDATED_NOT_NULL,
    column_dependant_rows,
    regclass,
    table_dependant_rows,
)
from dbdeploy.sql import Expression, TypeName, ident, literal, qualified, regclass_of, render
from dbdeploy.sql.blocks import indented

S = sql.SQL

CATALOG_ONLY = "constant (catalog only)"
NOT_VALID = "constant (catalog only: NOT VALID, no scan)"
VALIDATE = "proportional to rows (validating scan; reads and writes continue)"
CONCURRENT_INDEX = "proportional to rows (concurrent build: two scans; reads and writes continue)"
DROP_INVALID_INDEX = ("constant (nothing to do unless a failed build left an INVALID index; dropping one concurrently "
                      "waits for transactions using the table; reads and writes continue)")
CONCURRENT_NOTE = ("Concurrent index builds wait for every transaction that started before them, in the whole "
                   "database, to finish: check for long-running transactions first.")


def query(composable: sql.Composable) -> str:
    """The checklist form of a query: rendered, ending with a semicolon."""
    return render(composable).rstrip().rstrip(";") + ";"


def _values_list(rows: Iterable[Sequence]) -> sql.Composable:
    return S(", ").join(S("({})").format(S(", ").join(literal(v) for v in row)) for row in rows)


def rel_text(table: str) -> str:
    """A table name as the quoted text ``to_regclass`` needs (``"raw"."events"``)."""
    return render(qualified(table))


# --- dependency checks --------------------------------------------------------------------

def table_exists(table: str, why: str = "") -> CheckQuery:
    title = f"Table {table} exists" + (f" ({why})" if why else "")
    return CheckQuery(title, query(S("SELECT {} IS NOT NULL AS table_exists").format(regclass(table))), "true",
                      key=f"table-exists:{table}")


def optional_table_exists(fk_name: str, ref_table: str) -> CheckQuery:
    return CheckQuery(
        f"Optional foreign key {fk_name}: referenced table {ref_table} exists",
        query(S("SELECT {} IS NOT NULL AS table_exists").format(regclass(ref_table))), "true",
        otherwise=f"`false` is allowed: the foreign key is skipped with a NOTICE; once {ref_table} exists, run the "
                  "forward file again with psql to add it",
        key=f"optional-table:{ref_table}")


def table_missing(table: str, title: str, otherwise: str = "") -> CheckQuery:
    return CheckQuery(title, query(S("SELECT {} IS NULL AS table_absent").format(regclass(table))), "true",
                      otherwise=otherwise)


def relation_missing_check(qualified_name: str, title: str, otherwise: str = "") -> CheckQuery:
    """``qualified_name`` is ``schema.relation`` (a table or an index)."""
    schema, _, name = qualified_name.partition(".")
    return CheckQuery(title, query(S("SELECT {} IS NULL AS absent").format(
        regclass(ident(schema, name)))), "true", otherwise=otherwise)


def schema_exists(name: str, title: str | None = None) -> CheckQuery:
    return CheckQuery(title or f"Schema {name} exists", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {}) AS schema_exists").format(
        literal(name))), "true", key=f"schema-exists:{name}")


def schema_missing(name: str, title: str) -> CheckQuery:
    return CheckQuery(title, query(S(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = {}) AS schema_absent").format(
        literal(name))), "true")


def extension_installed(name: str, title: str | None = None) -> CheckQuery:
    return CheckQuery(title or f"Extension {name} is installed", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = {}) AS installed").format(
        literal(name))), "true", key=f"extension:{name}")


def extension_available(name: str) -> CheckQuery:
    return CheckQuery(f"Extension {name} is available to CREATE EXTENSION on this server", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = {}) AS available").format(
        literal(name))), "true", key=f"extension-available:{name}")


def dependants(table: str, column: str | None, title: str) -> CheckQuery:
    """Other tables' foreign keys and views that would make a drop refuse: one row per dependant."""
    rows = column_dependant_rows(table, column) if column else table_dependant_rows(table)
    return CheckQuery(title, query(S("SELECT DISTINCT dep AS dependant FROM ({rows}\n) AS deps\nORDER BY 1").format(
        rows=rows)), "no rows")


def has_primary_key(table: str) -> CheckQuery:
    return CheckQuery(f"Table {table} has a primary key (values are restored by it)", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indrelid = {} AND indisprimary)"
        " AS has_primary_key").format(regclass(table))), "true", key=f"has-pk:{table}")


# --- the data as it will be when an operation runs ---------------------------------------

def added_column_value(table: str, column: str, type_name: TypeName, default: Expression | None) -> DataChange:
    """A column added to existing rows: its default (evaluated per row), or NULL."""
    value = S("CAST(({}) AS {})").format(default.sql(), type_name.sql()) if default is not None else \
        S("CAST(NULL AS {})").format(type_name.sql())
    return DataChange(table, (ColumnValue(column, value, frozenset()),))


def backfilled_values(table: str, assignments: dict[str, Expression], where: Expression | None,
                      reads: Iterable[str]) -> DataChange:
    """A backfill: rows matching ``where`` get the new values, the others keep theirs."""
    values = []
    for column, expression in assignments.items():
        if where is None:
            text = S("({})").format(expression.sql())
        else:
            text = S("CASE WHEN ({w}) THEN ({e}) ELSE {c} END").format(w=where.sql(), e=expression.sql(),
                                                                       c=ident(column))
        values.append(ColumnValue(column, text, frozenset(reads) | {column}))
    return DataChange(table, tuple(values))


def projected(table: str, columns: Iterable[str], changes: Sequence[DataChange]) -> sql.Composable:
    """A FROM item with ``columns`` of ``table`` as they will be after ``changes`` (earlier operations)."""
    layers = [c for c in changes if c.table == table]
    return _layer(table, set(columns), layers)


def _layer(table: str, needed: set[str], layers: list[DataChange]) -> sql.Composable:
    for i in range(len(layers) - 1, -1, -1):
        values = {v.column: v for v in layers[i].values}
        touched = needed & set(values)
        if not touched:
            continue
        below = (needed - touched).union(*(values[c].reads for c in touched))
        inner = _layer(table, below, layers[:i])
        items = [S("{} AS {}").format(values[c].expression, ident(c)) if c in touched else ident(c)
                 for c in sorted(needed)]
        text = S("SELECT {items}\nFROM {inner} AS t").format(items=S(", ").join(items), inner=inner)
        return S("(\n{}\n)").format(indented(text))
    return qualified(table)


def violating_rows(title: str, source: sql.Composable, condition: sql.Composable, *, key: str = "",
                   otherwise: str = "") -> CheckQuery:
    return CheckQuery(title, query(S("SELECT count(*) AS violating_rows\nFROM {src} AS t\nWHERE {cond}").format(
        src=source, cond=condition)), "0", key=key, otherwise=otherwise, scans=True)


def not_null_violations(table: str, column: str, changes: Sequence[DataChange]) -> CheckQuery:
    return violating_rows(
        f"No row of {table} would be left with {column} NULL (SET NOT NULL would fail)",
        projected(table, [column], changes), S("{} IS NULL").format(ident(column)),
        key=f"not-null:{table}.{column}")


def check_violations(table: str, name: str, expression: Expression, columns: Iterable[str],
                     changes: Sequence[DataChange]) -> CheckQuery:
    return violating_rows(f"No row of {table} violates CHECK {name} (VALIDATE would fail)",
                          projected(table, columns, changes), S("({}) IS FALSE").format(expression.sql()))


def duplicate_keys(table: str, name: str, columns: Sequence[str], where: Expression | None, reads: Iterable[str],
                   changes: Sequence[DataChange], *, nulls_not_distinct: bool = False) -> CheckQuery:
    """Keys that appear more than once; with ``nulls_not_distinct`` rows with NULL keys count too
    (GROUP BY treats NULLs as equal, as UNIQUE NULLS NOT DISTINCT does)."""
    cols = S(", ").join(ident(c) for c in columns)
    condition = S(" AND ").join([S("{} IS NOT NULL").format(ident(c)) for c in columns if not nulls_not_distinct]
                                + ([S("({})").format(where.sql())] if where else []) or [S("true")])
    source = projected(table, set(columns) | set(reads), changes)
    text = S("SELECT count(*) AS duplicated_keys\nFROM (\n    SELECT {cols}\n    FROM {src} AS t\n"
             "    WHERE {cond}\n    GROUP BY {cols}\n    HAVING count(*) > 1\n) AS d").format(
        cols=cols, src=indented(source, first_line=False), cond=condition)
    return CheckQuery(f"No duplicate ({', '.join(columns)}) in {table} (the unique index {name} would fail)",
                      query(text), "0", scans=True)


def referenced_rows(ref_table: str, ref_columns: Sequence[str], ctx: PlanContext,
                    earlier: ChecklistItems) -> sql.Composable | None:
    """The rows the referenced table will hold when a foreign key is validated: its current rows
    (unless this migration creates it) plus the rows the migration seeds into it."""
    branches: list[sql.Composable] = []
    if ref_table not in earlier.created_tables:
        source = projected(ref_table, ref_columns, earlier.changes)
        branches.append(S("SELECT {cols} FROM {src} AS r").format(
            cols=S(", ").join(ident(c) for c in ref_columns), src=source))
    known = ctx.state.tables.get(ref_table)
    for seed in earlier.seeds:
        if seed.table != ref_table:
            continue
        for row in seed.rows:
            if any(row.get(c) is None for c in ref_columns):
                continue
            items = []
            for c in ref_columns:
                value = _seed_literal(row[c])
                if known and c in known.columns:
                    value = S("CAST({} AS {})").format(value, known.columns[c].type.sql())
                items.append(S("{} AS {}").format(value, ident(c)))
            branches.append(S("SELECT {}").format(S(", ").join(items)))
    if not branches:
        return None
    return S("\nUNION ALL\n").join(branches)


def _seed_literal(value) -> sql.Composable:
    """A seed value as SeedRows inserts it (dict and list values as jsonb)."""
    return literal(Jsonb(value)) if isinstance(value, dict | list) else literal(value)


def foreign_key_violations(table: str, name: str, columns: Sequence[str], ref_table: str,
                           ref_columns: Sequence[str], ctx: PlanContext, earlier: ChecklistItems) -> CheckQuery:
    present = S(" AND ").join(S("t.{} IS NOT NULL").format(ident(c)) for c in columns)
    match = S(" AND ").join(S("r.{} = t.{}").format(ident(rc), ident(c)) for c, rc in zip(columns, ref_columns,
                                                                                          strict=True))
    rows = referenced_rows(ref_table, ref_columns, ctx, earlier)
    title = f"No row of {table} references a missing row of {ref_table} (VALIDATE of {name} would fail)"
    if rows is None:
        condition = present
        title += f"; {ref_table} is created empty by this migration, so every non-NULL reference counts"
    else:
        plain = render(rows) == render(S("SELECT {cols} FROM {src} AS r").format(
            cols=S(", ").join(ident(c) for c in ref_columns), src=qualified(ref_table)))
        source = qualified(ref_table) if plain else S("(\n{}\n    )").format(indented(rows, " " * 8))
        condition = S("{present}\n  AND NOT EXISTS (\n    SELECT 1 FROM {src} AS r\n    WHERE {match}\n  )").format(
            present=present, src=source, match=match)
    return violating_rows(title, projected(table, columns, earlier.changes), condition)


def estimated_rows(table: str) -> CheckQuery:
    return CheckQuery(f"Estimated rows in {table} (planner statistics; sizes the long steps)", query(S(
        "SELECT GREATEST(c.reltuples, 0)::bigint AS estimated_rows\n"
        "FROM pg_catalog.pg_class AS c WHERE c.oid = {}").format(regclass(table))), "", key=f"rows:{table}")


def index_build_progress(table: str) -> CheckQuery:
    return CheckQuery(f"Index build progress on {table}", query(S(
        "SELECT p.phase, p.blocks_done, p.blocks_total, p.tuples_done, p.tuples_total\n"
        "FROM pg_catalog.pg_stat_progress_create_index AS p WHERE p.relid = {}").format(regclass(table))), "",
        key=f"index-progress:{table}")


def backfill_progress(table: str, progress: sql.Identifier, progress_name: str) -> CheckQuery:
    return CheckQuery(f"Backfill progress of {table} (cursor table {progress_name})", query(S(
        "SELECT dbdeploy_rows_done, dbdeploy_batches_done FROM {}").format(progress)), "")


# --- health checks ------------------------------------------------------------------------

def column_state(table: str, column: str, not_null: bool | None) -> CheckQuery:
    """Health check: ``table.column`` exists and, for ``not_null`` True, holds no NULL (NOT NULL and,
    on PostgreSQL 18, not an unvalidated ``NOT NULL … NOT VALID``: :data:`NOT_NULL_PROVEN`); for
    False, has no NOT NULL at all (not even an unvalidated one, which rejects NULL writes)."""
    extra = {True: S(" AND ") + NOT_NULL_PROVEN, False: S(" AND NOT a.attnotnull"), None: S("")}[not_null]
    what = {True: " and is NOT NULL", False: " and is nullable", None: ""}[not_null]
    return CheckQuery(f"Column {table}.{column} exists{what}", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a\n"
        "    WHERE a.attrelid = {rel} AND a.attname = {col} AND a.attnum > 0 AND NOT a.attisdropped{extra})"
        " AS column_ok").format(
        rel=regclass(table), col=literal(column), extra=extra)), "true", key=f"column:{table}.{column}")


def column_gone(table: str, column: str) -> CheckQuery:
    return CheckQuery(f"Column {table}.{column} is gone", query(S(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute\n"
        "    WHERE attrelid = {rel} AND attname = {col} AND attnum > 0 AND NOT attisdropped) AS dropped").format(
        rel=regclass(table), col=literal(column))), "true", key=f"column:{table}.{column}")


def columns_state(table: str, columns: Sequence[tuple[str, bool]]) -> CheckQuery:
    """Health check: the count of ``(column, not_null)`` pairs that ``table`` does not match. A column
    matches when it exists, its ``attnotnull`` is ``not_null`` and its NOT NULL is not an unvalidated
    ``NOT NULL … NOT VALID`` (PostgreSQL 18: may still hold NULLs; when the spec says nullable it
    differs anyway, as it rejects NULL writes)."""
    return CheckQuery(
        f"All {len(columns)} columns of {table} exist, NOT NULL exactly where the spec says (mismatches)",
        query(S("SELECT count(*) AS mismatches\nFROM (VALUES {values}) AS e(column_name, not_null)\n"
                "WHERE NOT EXISTS (\n    SELECT 1 FROM pg_catalog.pg_attribute AS a\n"
                "    WHERE a.attrelid = {rel} AND a.attname = e.column_name AND a.attnum > 0\n"
                "      AND NOT a.attisdropped AND a.attnotnull = e.not_null AND NOT {unvalidated}\n)").format(
            values=_values_list(columns), rel=regclass(table), unvalidated=UNVALIDATED_NOT_NULL)), "0",
        key=f"columns:{table}")


def constraint_validated(table: str, name: str, what: str = "Constraint") -> CheckQuery:
    return CheckQuery(f"{what} {name} on {table} exists and is validated", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint\n"
        "    WHERE conrelid = {rel} AND conname = {name} AND convalidated) AS validated").format(
        rel=regclass(table), name=literal(name))), "true", key=f"constraint:{table}.{name}")


def constraint_present_not_validated(table: str, name: str, what: str = "Constraint") -> CheckQuery:
    """The health check of a constraint left NOT VALID on purpose (``validate=False``): it exists."""
    return CheckQuery(f"{what} {name} on {table} exists (left NOT VALID on purpose: existing rows are not checked)",
                      query(S("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint\n"
                              "    WHERE conrelid = {rel} AND conname = {name}) AS present").format(
                          rel=regclass(table), name=literal(name))), "true", key=f"constraint:{table}.{name}")


def optional_constraint_validated(table: str, name: str, requires: str) -> CheckQuery:
    return CheckQuery(
        f"Optional foreign key {name} on {table} exists and is validated, or {requires} does not exist yet",
        query(S("SELECT {missing} OR EXISTS (SELECT 1 FROM pg_catalog.pg_constraint\n"
                "    WHERE conrelid = {rel} AND conname = {name} AND convalidated) AS ok").format(
            missing=S("{} IS NULL").format(regclass(requires)), rel=regclass(table), name=literal(name))),
        "true", key=f"constraint:{table}.{name}")


def constraints_validated(table: str, names: Sequence[str]) -> CheckQuery:
    return CheckQuery(
        f"Constraints of {table} ({', '.join(names)}) exist and are validated (missing or NOT VALID)",
        query(S("SELECT count(*) AS missing_or_not_valid\nFROM (VALUES {values}) AS e(name)\n"
                "WHERE NOT EXISTS (\n    SELECT 1 FROM pg_catalog.pg_constraint AS c\n"
                "    WHERE c.conrelid = {rel} AND c.conname = e.name AND c.convalidated\n)").format(
            values=_values_list((n,) for n in names), rel=regclass(table))), "0", key=f"constraints:{table}")


def index_valid(qualified_name: str) -> CheckQuery:
    schema, _, name = qualified_name.partition(".")
    return CheckQuery(f"Index {qualified_name} exists and is valid (indisvalid)", query(S(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index\n"
        "    WHERE indexrelid = {} AND indisvalid) AS index_valid").format(
        regclass(ident(schema, name)))), "true", key=f"index:{qualified_name}")


def indexes_valid(table: str, qualified_names: Sequence[str]) -> CheckQuery:
    names = [(render(ident(*n.split(".", 1))),) for n in qualified_names]
    return CheckQuery(
        f"Indexes of {table} ({', '.join(n.partition('.')[2] for n in qualified_names)}) exist and are valid "
        "(missing or INVALID)",
        query(S("SELECT count(*) AS missing_or_invalid\nFROM (VALUES {values}) AS e(name)\n"
                "WHERE NOT EXISTS (\n    SELECT 1 FROM pg_catalog.pg_index AS i\n"
                "    WHERE i.indexrelid = {rel} AND i.indisvalid\n)").format(
            values=_values_list(names), rel=regclass_of(S("e.name")))), "0", key=f"indexes:{table}")


def backfill_finished(table: str, progress: sql.Identifier, progress_name: str, key: Sequence[str]) -> CheckQuery:
    done = S(" AND ").join(S("{} IS NULL").format(ident(k)) for k in key)
    return CheckQuery(f"Backfill of {table} finished (its cursor in {progress_name} reached the end)", query(S(
        "SELECT bool_and({done}) AS finished FROM {p}").format(done=done, p=progress)), "true",
        key=f"backfill:{progress_name}")


__all__ = [
    "CATALOG_ONLY", "CONCURRENT_INDEX", "CONCURRENT_NOTE", "DROP_INVALID_INDEX", "NOT_VALID", "VALIDATE",
    "added_column_value",
    "backfill_finished", "backfill_progress", "backfilled_values", "check_violations", "column_gone",
    "column_state", "columns_state", "constraint_validated", "constraints_validated", "dependants",
    "duplicate_keys", "estimated_rows", "extension_available", "extension_installed",
    "foreign_key_violations", "has_primary_key", "index_build_progress", "index_valid", "indexes_valid",
    "not_null_violations", "optional_constraint_validated", "optional_table_exists", "projected", "query",
    "referenced_rows", "rel_text", "relation_missing_check", "schema_exists", "schema_missing",
    "table_exists", "table_missing", "violating_rows",
]
