"""A name dbdeploy creates (schema, table, column, constraint, index) that needs double quotes."""

from __future__ import annotations

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.model.names import needs_quotes, split_table

ID = "snake-case-names"
SEVERITY = "warning"
PROBLEM = ("The name is not lowercase snake_case, so every query must spell it in double quotes with the exact case "
           "(\"AspNetUsers\"): unquoted, PostgreSQL folds it to lowercase and finds nothing (or another object). "
           "Quoted names are for addressing objects that already exist (made by an ORM); names dbdeploy creates "
           "should not need them. Derived names (constraints, indexes) inherit the case of their table and columns.")
FIX = ("Use a lowercase snake_case name (e.g. asp_net_users), or give the constraint/index an explicit "
       "snake_case name=; allow={\"snake-case-names\": \"why\"} when the quoted name is wanted.")


def _created(op) -> list[tuple[str, str]]:
    """(what, exact name) of every name the operation creates."""
    kind = getattr(op, "kind", "")
    table = getattr(op, "table", None)
    found: list[tuple[str, str]] = []
    if kind == "create_schema":
        found.append(("schema", op.name))
    elif kind == "create_table":
        schema, name = split_table(table)
        found += [("schema", schema), ("table", name)]
        found += [(f"column of {table}", c.name) for c in op.columns]
        if op.primary_key:
            found.append((f"primary key of {table}", op.pk_name))
        for part in (*op.foreign_keys, *op.uniques, *op.checks, *op.exclusions):
            found.append((f"constraint of {table}", part.resolved_name(table)))
        found += [(f"index of {table}", i.resolved_name(table)) for i in op.indexes]
    elif kind == "add_column":
        found.append((f"column of {table}", op.column.name))
    elif kind == "create_index":
        found.append((f"index of {table}", op.index.resolved_name(table)))
    elif kind in ("add_foreign_key", "add_check", "add_unique"):
        part = {"add_foreign_key": "foreign_key", "add_check": "check", "add_unique": "unique"}[kind]
        found.append((f"constraint of {table}", getattr(op, part).resolved_name(table)))
    return found


def check(ctx: OpContext):
    seen: set[tuple[str, str]] = set()
    for what, name in _created(ctx.op):
        if needs_quotes(name) and (what, name) not in seen:
            seen.add((what, name))
            yield f"{what} \"{name}\" is created with a name that needs double quotes"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
