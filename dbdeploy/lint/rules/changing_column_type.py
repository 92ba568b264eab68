"""ALTER COLUMN … TYPE in RawSQL, which rewrites the table."""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType

from dbdeploy.lint import types
from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands

ID = "changing-column-type"
SEVERITY = "error"
PROBLEM = ("ALTER COLUMN … TYPE rewrites the table and rebuilds all its indexes under an ACCESS EXCLUSIVE lock: "
           "reads and writes wait for the whole rewrite. Only a few changes are free (varchar(n) → text or to a "
           "longer varchar, numeric(p, s) → a larger precision with the same scale).")
FIX = ("Add a new column of the new type (AddColumn), fill it with a batched Backfill, switch the application "
       "over (a trigger can keep both in sync meanwhile), then drop the old column (DropColumn).")


def _free(old: types.TypeInfo | None, new: types.TypeInfo) -> bool:
    """Binary-coercible changes PostgreSQL makes without a rewrite (when the old type is known)."""
    if old is None or old.array != new.array:
        return False
    if old.name in types.TEXT_LIKE and new.name in types.TEXT_LIKE:
        if new.name == "text" or not new.typmods:
            return True
        return old.name == "varchar" and types.length(old) is not None and (types.length(new) or 0) >= types.length(old)
    if old.name == "numeric" and new.name == "numeric" and old.typmods:
        if not new.typmods:
            return True
        old_scale = old.typmods[1] if len(old.typmods) > 1 else 0
        new_scale = new.typmods[1] if len(new.typmods) > 1 else 0
        return new.typmods[0] is not None and old.typmods[0] is not None and new.typmods[0] >= old.typmods[0] \
            and new_scale == old_scale
    return False


def check(ctx: OpContext):
    for stmt, node, table, cmd in alter_table_commands(ctx.forward + ctx.rollback):
        if cmd.subtype != AlterTableType.AT_AlterColumnType or not isinstance(cmd.def_, ast.ColumnDef):
            continue
        if ctx.relation_is_new(node.relation, stmt):
            continue
        new = types.from_type_name(cmd.def_.typeName)
        known = ctx.before.schema.tables.get(table)
        column = known.columns.get(cmd.name) if known is not None else None
        old = types.from_text(column.type) if column is not None else None
        if cmd.def_.raw_default is None and _free(old, new):
            continue
        was = f" from {old}" if old is not None else ""
        yield f"{stmt.label()} (changes {table}.{cmd.name}{was} to {new})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
