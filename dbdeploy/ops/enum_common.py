"""What the enum operations (CreateEnum, AddEnumValue, RenameEnumValue, DropEnum) share: the type-name
and label models, the fact recorded on ``SchemaState.types``, and the catalog SQL they read back.

Facts from the PostgreSQL docs ("Enumerated Types", 8.7): an enum label is case sensitive, at most
NAMEDATALEN-1 = 63 bytes, and the labels are ordered by ``pg_enum.enumsortorder``; an existing label
can be renamed (``ALTER TYPE … RENAME VALUE``, PostgreSQL 10+) but never removed. Everything read back
goes through ``pg_catalog`` (``pg_enum`` ordered by ``enumsortorder``, ``pg_depend`` for dependants),
with names given as data (the exact catalog names), never as SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from psycopg import sql
from pydantic import AfterValidator

from dbdeploy.model import names
from dbdeploy.ops.base import PlanContext, SchemaState
from dbdeploy.sql import ident, literal

S = sql.SQL

MAX_LABEL_BYTES = 63


def check_type_name(value: object) -> str:
    """``schema.name`` or ``name`` (public) of a type, each part snake_case or double-quoted (the
    exact name, as for tables: :func:`dbdeploy.model.names.check_table_name`)."""
    return names.check_table_name(value, "type")


def check_label(value: object, what: str = "value") -> str:
    """An enum label: a non-empty string of at most 63 bytes without a NUL byte (PostgreSQL docs,
    "Enumerated Types": labels are limited to NAMEDATALEN-1 bytes)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__} — fix: give the label as a string")
    if not value:
        raise ValueError(f"{what} is empty — fix: give a non-empty label (PostgreSQL refuses an empty enum label)")
    if "\x00" in value:
        raise ValueError(f"{what} {value!r} contains a NUL byte — fix: remove the NUL byte (\\x00)")
    size = len(value.encode("utf-8"))
    if size > MAX_LABEL_BYTES:
        raise ValueError(f"{what} {value!r} is {size} bytes; PostgreSQL limits enum labels to {MAX_LABEL_BYTES} "
                         f"bytes (NAMEDATALEN-1) — fix: use a shorter label")
    return value


def check_labels(values: list) -> list[str]:
    """A non-empty list of distinct labels (:func:`check_label` each)."""
    if not values:
        raise ValueError("values must not be empty — fix: list the labels of the type in order, e.g. "
                         "values=[\"open\", \"closed\"]")
    seen: set[str] = set()
    for i, value in enumerate(values):
        check_label(value, f"values[{i}]")
        if value in seen:
            raise ValueError(f"label {value!r} is listed twice — fix: list each label once (PostgreSQL refuses "
                             "duplicate enum labels)")
        seen.add(value)
    return list(values)


TypeName = Annotated[str, AfterValidator(check_type_name)]
Label = Annotated[str, AfterValidator(check_label)]
Labels = Annotated[list[str], AfterValidator(check_labels)]


@dataclass(frozen=True)
class EnumFact:
    """An enum type the specs created (on ``SchemaState.types``): its labels in order and the
    version of the CreateEnum that created it."""

    labels: tuple[str, ...]
    version: str = ""
    kind: str = "enum"


def known_enum(state: SchemaState, name: str, operation: str) -> EnumFact | None:
    """The enum ``name`` as the specs built it, or None when they do not know it (an existing type).
    ValueError when it is a type of another kind."""
    fact = state.types.get(name)
    if fact is None:
        return None
    if not isinstance(fact, EnumFact):
        raise ValueError(f"{operation}: type {name} is not an enum type — fix: name an enum type")
    return fact


def type_parts(name: str) -> tuple[str, str]:
    schema, _, type_name = name.partition(".")
    return schema, type_name


def type_ident(name: str) -> sql.Identifier:
    return ident(*type_parts(name))


def type_oid(name: str) -> sql.Composable:
    """The oid of type ``name`` (exact schema and name as data), or NULL."""
    schema, type_name = type_parts(name)
    return S("(SELECT t.oid FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
             " WHERE n.nspname = {s} AND t.typname = {n})").format(s=literal(schema), n=literal(type_name))


def type_kind(name: str) -> sql.Composable:
    """``pg_type.typtype`` of ``name`` (``'e'`` for an enum), or NULL when there is no such type."""
    schema, type_name = type_parts(name)
    return S("(SELECT t.typtype FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace"
             " WHERE n.nspname = {s} AND t.typname = {n})").format(s=literal(schema), n=literal(type_name))


def enum_labels(name: str) -> sql.Composable:
    """The labels of enum ``name`` in their order (``pg_enum.enumsortorder``), a ``text[]``; NULL when
    the type does not exist or has no label."""
    return S("(SELECT pg_catalog.array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_catalog.pg_enum e"
             " WHERE e.enumtypid = {oid})").format(oid=type_oid(name))


def has_label(name: str, label: str) -> sql.Composable:
    return S("EXISTS (SELECT 1 FROM pg_catalog.pg_enum e WHERE e.enumtypid = {oid} AND e.enumlabel = {v})").format(
        oid=type_oid(name), v=literal(label))


def labels_array(labels) -> sql.Composable:
    """``ARRAY[…]::text[]`` of ``labels`` (literals)."""
    return S("ARRAY[{}]::text[]").format(S(", ").join(literal(v) for v in labels))


def dependant_rows(name: str) -> sql.Composable:
    """One row (``dep``, ``classid``, ``objid``, ``objsubid``) per object depending on type ``name`` or its
    array type (``pg_depend``, deptype normal): columns, domains, functions, views, other types, …, described
    by ``pg_describe_object``."""
    oid = type_oid(name)
    return S(
        "SELECT pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid) AS dep, d.classid, d.objid,"
        " d.objsubid\n"
        "    FROM pg_catalog.pg_depend d\n"
        "    WHERE d.refclassid = 'pg_catalog.pg_type'::pg_catalog.regclass AND d.deptype = 'n'\n"
        "      AND d.refobjid IN ({oid}, (SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = {oid}))").format(
        oid=oid)


def released_dependant(ctx: PlanContext) -> sql.Composable:
    """A condition on a :func:`dependant_rows` row ``x``: the rollback of this migration removes it before
    the type — a column of a table this version created (and its rollback drops), or a column this version
    added (AddColumn, whose rollback drops it)."""
    objects = ident(ctx.history_schema, "migration_objects")
    return S(
        "EXISTS (SELECT 1 FROM (SELECT CASE WHEN x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN x.objid"
        " ELSE (SELECT ad.adrelid FROM pg_catalog.pg_attrdef ad WHERE ad.oid = x.objid) END AS rel,"
        " CASE WHEN x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass THEN x.objsubid::int2"
        " ELSE (SELECT ad.adnum FROM pg_catalog.pg_attrdef ad WHERE ad.oid = x.objid) END AS num"
        " WHERE x.classid IN ('pg_catalog.pg_class'::pg_catalog.regclass,"
        " 'pg_catalog.pg_attrdef'::pg_catalog.regclass)) r"
        " JOIN pg_catalog.pg_class c ON c.oid = r.rel JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = r.num"
        " JOIN {objects} o ON o.version = {v}"
        " AND ((o.object_type = 'table' AND o.object_name = n.nspname || '.' || c.relname)"
        " OR (o.object_type = 'column' AND o.object_name = n.nspname || '.' || c.relname || '.' || a.attname)))"
    ).format(objects=objects, v=literal(ctx.version))


def in_backup_schema(ctx: PlanContext) -> sql.Composable:
    """A condition on a :func:`dependant_rows` row ``x``: a column of a table in dbdeploy's backup schema
    (rows a rollback copied out); :func:`backup_columns_to_text` turns such columns into text first."""
    return S("(x.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
             " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = x.objid AND n.nspname = {b}))"
             ).format(b=literal(ctx.backup_schema))


def backup_columns_to_text(ctx: PlanContext, name: str, *, to_base: bool = False) -> sql.Composable:
    """PL/pgSQL (needs ``v_bk record``): every column of type ``name`` (or an array of it) in a table of
    dbdeploy's backup schema becomes ``text`` (``text[]``) holding the labels — with ``to_base``, the
    domain's base type (``format_type`` of ``typbasetype``) — so the copies a rollback made of such
    columns keep their values without keeping the type alive."""
    oid = type_oid(name)
    target = (S("(SELECT pg_catalog.format_type(t.typbasetype, t.typtypmod) FROM pg_catalog.pg_type t"
                " WHERE t.oid = {})").format(oid) if to_base else S("'text'"))
    return S(
        "FOR v_bk IN SELECT a.attrelid::pg_catalog.regclass::text AS tbl, pg_catalog.quote_ident(a.attname) AS col,"
        " a.atttypid = {oid} AS scalar\n"
        "    FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid\n"
        "    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace\n"
        "    WHERE n.nspname = {b} AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped\n"
        "      AND a.atttypid IN ({oid}, (SELECT t.typarray FROM pg_catalog.pg_type t WHERE t.oid = {oid}))\n"
        "LOOP\n"
        "    EXECUTE 'ALTER TABLE ' || v_bk.tbl || ' ALTER COLUMN ' || v_bk.col || ' TYPE ' || {target}\n"
        "        || CASE WHEN v_bk.scalar THEN '' ELSE '[]' END || ' USING ' || v_bk.col || '::' || {target}\n"
        "        || CASE WHEN v_bk.scalar THEN '' ELSE '[]' END;\n"
        "END LOOP;").format(oid=oid, b=literal(ctx.backup_schema), target=target)


def dependants(name: str, skip: sql.Composable | None = None) -> sql.Composable:
    """A text listing what depends on type ``name`` (or NULL); ``skip`` (a condition on row ``x``)
    leaves some out."""
    where = S("") if skip is None else S(" WHERE NOT {}").format(skip)
    return S("(SELECT pg_catalog.string_agg(DISTINCT x.dep, ', ') FROM ({rows}) x{where})").format(
        rows=dependant_rows(name), where=where)


def later_touches(ctx: PlanContext, name: str) -> bool:
    """Whether an operation after this one in the migration changes the labels of enum ``name`` (its
    expectation then says what the labels are; this one's checks only that the type exists)."""
    return any(getattr(op, "enum_type_name", None) == name for op in ctx.later_ops)


def enum_key(type_name: str, label: str) -> str:
    """The ownership record name of one label of an enum type."""
    return f"{type_name}.{label}"


__all__ = [
    "EnumFact", "Label", "Labels", "TypeName", "backup_columns_to_text", "check_label", "check_labels",
    "check_type_name", "dependant_rows", "dependants", "enum_key", "enum_labels", "has_label", "in_backup_schema",
    "known_enum", "labels_array", "later_touches", "released_dependant", "type_ident", "type_kind", "type_oid",
    "type_parts",
]
