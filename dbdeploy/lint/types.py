"""Column types as PostgreSQL's parser sees them, for the type-choice rules.

``int``, ``integer`` and ``int4`` are one type (``int4``) to the parser, ``char(3)`` and
``character(3)`` are ``bpchar``, ``timestamp without time zone`` is ``timestamp``: the rules
compare these canonical names, never the spelling in the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream

SMALL_INTEGERS = frozenset({"int2", "int4"})
SERIALS = frozenset({"serial", "serial2", "serial4", "serial8", "smallserial", "bigserial"})
TEXT_LIKE = frozenset({"text", "varchar"})


@dataclass(frozen=True)
class TypeInfo:
    name: str                       # canonical base name: int4, bpchar, varchar, timestamp, json, serial, …
    typmods: tuple                  # integer modifiers (length, precision); None for non-constant ones
    array: bool
    node: object = field(compare=False, repr=False)    # pglast's TypeName

    @cached_property
    def text(self) -> str:
        """The type as written back by the parser (rendered when a message needs it: rendering
        every column of a large RawSQL costs more than reading it)."""
        try:
            return RawStream()(self.node).removeprefix("pg_catalog.")
        except Exception:  # rendering is only for messages
            return self.name

    @property
    def plain(self) -> bool:
        return not self.array

    def __str__(self) -> str:
        return self.text


def from_type_name(node) -> TypeInfo:
    names = [n.sval for n in node.names if isinstance(n, ast.String)]
    if len(names) == 2 and names[0] != "pg_catalog":
        name = f"{names[0]}.{names[1]}"     # a user type in another schema: never a built-in
    else:
        name = names[-1].lower() if names else ""
    typmods = tuple(m.val.ival if isinstance(m, ast.A_Const) and isinstance(getattr(m, "val", None), ast.Integer)
                    else None for m in node.typmods or ())
    return TypeInfo(name, typmods, bool(node.arrayBounds), node)


def from_text(text: str) -> TypeInfo | None:
    """Parse a spec's column type (already validated as one type name)."""
    try:
        statements = parse_sql(f"SELECT CAST(NULL AS {text})")
    except ParseError:
        return None
    cast = statements[0].stmt.targetList[0].val
    return from_type_name(cast.typeName) if isinstance(cast, ast.TypeCast) else None


def length(info: TypeInfo) -> int | None:
    return info.typmods[0] if info.typmods and info.typmods[0] is not None else None
