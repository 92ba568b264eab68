"""Errors PostgreSQL raises when a bundle runs that the specs alone already show.

- :data:`MAX_COLUMNS`: a table has at most 1,600 columns (``MaxHeapAttributeNumber``; dropped
  columns still count, so the columns the specs know are a lower bound).
- :func:`foreign_key_type_problem`: a foreign key needs an equality operator between the column
  types. Two built-in types of different categories (``pg_type.typcategory``: numeric, string,
  date/time, boolean, …) have none unless an implicit cast or a cross-type ``=`` links them
  (:data:`dbdeploy.sql.builtin_catalog.COMPARABLE_ACROSS_CATEGORIES`), and an array never matches a
  non-array. Only such certain mismatches are refused; user-defined types are left to the database.
- Foreign keys to a table that the same migration creates later (:func:`dbdeploy.ops.migration`):
  CREATE TABLE would fail because the referenced table does not exist yet.
"""

from __future__ import annotations

from pglast import parse_sql
from pglast.parser import ParseError

from dbdeploy.errors import FIX_MARK
from dbdeploy.sql.builtin_catalog import COMPARABLE_ACROSS_CATEGORIES, TYPES

MAX_COLUMNS = 1600

_SERIALS = {"smallserial": "int2", "serial2": "int2", "serial": "int4", "serial4": "int4",
            "bigserial": "int8", "serial8": "int8"}
# Categories whose types PostgreSQL compares only within the category (apart from the listed pairs):
# numeric, string, date/time, boolean, timespan, network address, bit string.
_CLOSED_CATEGORIES = frozenset("NSDBTIV")
_CLOSED_TYPES = frozenset(("uuid", "bytea", "jsonb"))
_CATEGORY_NAMES = {"N": "numeric", "S": "string", "D": "date/time", "B": "boolean", "T": "time span",
                   "I": "network address", "V": "bit string", "U": "other"}


def type_key(type_text: str) -> tuple[str, bool] | None:
    """``(built-in type name, is_array)`` of a column type such as ``integer`` or ``text[]``, or None
    for a user-defined (schema-qualified) type."""
    try:
        type_name = parse_sql(f"SELECT CAST(NULL AS {type_text})")[0].stmt.targetList[0].val.typeName
    except (ParseError, IndexError, AttributeError):
        return None
    names = [n.sval for n in type_name.names]
    if len(names) > 2 or (len(names) == 2 and names[0] != "pg_catalog"):
        return None
    name = _SERIALS.get(names[-1], names[-1])
    return (name, bool(type_name.arrayBounds)) if name in TYPES else None


def _comparable(left: str, right: str) -> bool | None:
    """Whether two built-in base types can be compared with ``=``; None when unsure."""
    if left == right:
        return True
    cat_left, cat_right = TYPES[left], TYPES[right]
    closed = [t for t, c in ((left, cat_left), (right, cat_right)) if c in _CLOSED_CATEGORIES or t in _CLOSED_TYPES]
    if len(closed) < 2:
        return None
    if cat_left == cat_right and left not in _CLOSED_TYPES and right not in _CLOSED_TYPES:
        return True
    return tuple(sorted((left, right))) in COMPARABLE_ACROSS_CATEGORIES


def foreign_key_type_problem(column: str, column_type: str, ref: str, ref_type: str) -> str | None:
    """Why a foreign key from ``column`` (of ``column_type``) to ``ref`` (of ``ref_type``) cannot be
    created, as "reason — fix", or None when it can (or the types are not both built-in)."""
    left, right = type_key(column_type), type_key(ref_type)
    if left is None or right is None:
        return None
    (lname, larray), (rname, rarray) = left, right
    if larray == rarray and _comparable(lname, rname) is not False:
        return None

    def shown(text: str, name: str, array: bool) -> str:
        return f"{text} (an array)" if array else f"{text} ({_CATEGORY_NAMES.get(TYPES[name], TYPES[name])})"

    return (f"column {column} is {shown(column_type, lname, larray)} but the referenced {ref} is "
            f"{shown(ref_type, rname, rarray)}: "
            f"PostgreSQL has no equality operator between them, so the foreign key cannot be created"
            f"{FIX_MARK}give {column} the referenced column's type ({ref_type})")


# Built-in types with no default btree operator class (no "=" PostgreSQL can sort or index by): a
# primary key, unique constraint or plain btree index on them fails ("data type json has no default
# operator class for access method btree"). (An array of them is accepted until two rows are compared.)
NO_BTREE_TYPES = frozenset(("json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle", "jsonpath",
                            "txid_snapshot", "pg_snapshot", "xid"))


def check_btree_columns(what: str, columns, known: dict) -> None:
    """Raise ValueError ("what: reason — fix") when one of ``columns`` (names; ``known``: name → Column)
    has a type that a btree index (primary key, unique constraint, default index) cannot hold."""
    for name in columns:
        column = known.get(name)
        key = type_key(column.type) if column is not None else None
        if key is not None and key[0] in NO_BTREE_TYPES and not key[1]:
            better = "jsonb" if key[0] == "json" else "another type (or method=\"gist\" for geometric types)"
            raise ValueError(f"{what}: column {name} is {column.type}, which has no btree operator class, so "
                             "PostgreSQL cannot build a primary key, unique constraint or btree index on it"
                             f"{FIX_MARK}use {better}, or leave the column out")


def too_many_columns(table: str, count: int) -> str | None:
    """The refusal for a table that would have ``count`` columns, or None within the limit."""
    if count <= MAX_COLUMNS:
        return None
    return (f"{table} would have {count} columns; PostgreSQL allows at most {MAX_COLUMNS} per table"
            f"{FIX_MARK}split the columns over several tables (or store sparse values in a jsonb column)")




def check_foreign_key_types(what: str, columns: list[str], own: dict, ref_table: str, ref_columns: list[str],
                            referenced: dict | None) -> None:
    """Raise ValueError ("what: reason — fix") when a column pair of a foreign key has types PostgreSQL
    cannot compare. ``own``/``referenced``: column name → Column of the two tables (None: unknown)."""
    if referenced is None:
        return
    for column, ref in zip(columns, ref_columns, strict=False):
        if column in own and ref in referenced:
            problem = foreign_key_type_problem(column, own[column].type, f"{ref_table}.{ref}", referenced[ref].type)
            if problem:
                raise ValueError(f"{what}: {problem}")


__all__ = ["MAX_COLUMNS", "NO_BTREE_TYPES", "check_btree_columns", "check_foreign_key_types",
           "foreign_key_type_problem", "too_many_columns", "type_key"]
