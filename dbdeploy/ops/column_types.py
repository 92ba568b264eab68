"""Which column type changes PostgreSQL makes without rewriting the table: the plan-time prediction.

PostgreSQL docs, ALTER TABLE, "Notes": "changing the type of an existing column will require the
entire table and its indexes to be rewritten. As an exception, when changing the type of an existing
column, if the USING clause does not change the column contents and the old type is either binary
coercible to the new type or an unconstrained domain over the new type, a table rewrite is not
needed. However, indexes must always be rebuilt unless the system can verify that the new index
would be logically equivalent to the existing one." Besides binary-coercible type pairs
(``pg_cast.castmethod = 'b'`` with an unconstrained target: ``varchar(n)`` → ``text``), a change of
only the type modifier is free when the type's length-coercion function has a support function that
proves it a no-op (``varchar_support``, ``numeric_support``: a longer ``varchar``, more precision
with the same scale, or no modifier at all).

This module only predicts from the spellings the specs know. The generated SQL decides again at run
time from the catalog (:mod:`dbdeploy.ops.alter_column_type`), so a wrong prediction never becomes
a long ACCESS EXCLUSIVE rewrite. The lint rule ``changing-column-type`` uses the same prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

from pglast import ast, parse_sql

# Canonical names (as PostgreSQL's parser spells them) of the types the prediction knows.
TEXT_LIKE = frozenset({"text", "varchar"})
_ALIASES = {"character varying": "varchar", "decimal": "numeric", "int": "int4", "integer": "int4",
            "bigint": "int8", "smallint": "int2"}
# A serial column is its integer type with a sequence default: the same type for a change and a cast.
SERIAL_BASE = {"serial": "int4", "serial4": "int4", "bigserial": "int8", "serial8": "int8", "smallserial": "int2",
               "serial2": "int2"}


@dataclass(frozen=True)
class TypeShape:
    """A type as the parser sees it: canonical base ``name``, integer ``typmods`` (None for a
    non-constant one) and whether it is an ``array``."""

    name: str
    typmods: tuple
    array: bool


def shape(text: str) -> TypeShape | None:
    """The :class:`TypeShape` of a type spelling (None when it does not parse as one type)."""
    try:
        cast = parse_sql(f"SELECT CAST(NULL AS {text})")[0].stmt.targetList[0].val
    except Exception:   # a spelling the prediction cannot read: decided at run time only
        return None
    if not isinstance(cast, ast.TypeCast):
        return None
    node = cast.typeName
    names = [n.sval for n in node.names if isinstance(n, ast.String)]
    if len(names) == 2 and names[0] != "pg_catalog":
        name = f"{names[0]}.{names[1]}"
    else:
        name = names[-1].lower() if names else ""
    name = _ALIASES.get(name, name)
    name = SERIAL_BASE.get(name, name)
    typmods = tuple(m.val.ival if isinstance(m, ast.A_Const) and isinstance(getattr(m, "val", None), ast.Integer)
                    else None for m in node.typmods or ())
    return TypeShape(name, typmods, bool(node.arrayBounds))


def in_place(old: TypeShape | None, new: TypeShape | None) -> bool | None:
    """True when changing a column from ``old`` to ``new`` needs no table rewrite and no index
    rebuild (the cases the module docstring lists), False when it needs one, None when it cannot be
    told from the spellings (an unknown old type)."""
    if old is None or new is None:
        return None
    if old.array != new.array:
        return False
    if old == new:
        return True
    if old.name in TEXT_LIKE and new.name in TEXT_LIKE:
        if new.name == "text" or not new.typmods:
            return True
        old_len = old.typmods[0] if old.name == "varchar" and old.typmods else None
        return old_len is not None and new.typmods[0] is not None and new.typmods[0] >= old_len
    if old.name == "numeric" and new.name == "numeric" and old.typmods:
        if not new.typmods:
            return True
        old_scale = old.typmods[1] if len(old.typmods) > 1 else 0
        new_scale = new.typmods[1] if len(new.typmods) > 1 else 0
        return (new.typmods[0] is not None and old.typmods[0] is not None and new.typmods[0] >= old.typmods[0]
                and new_scale == old_scale)
    return False


__all__ = ["SERIAL_BASE", "TypeShape", "in_place", "shape"]
