"""ALTER COLUMN … TYPE in RawSQL, which rewrites the table."""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType

from dbdeploy.lint import types
from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands
from dbdeploy.ops.column_types import in_place, shape

ID = "changing-column-type"
SEVERITY = "error"
PROBLEM = ("ALTER COLUMN … TYPE rewrites the table and rebuilds all its indexes under an ACCESS EXCLUSIVE lock: "
           "reads and writes wait for the whole rewrite. Only a few changes are free (varchar(n) → text or to a "
           "longer varchar, numeric(p, s) → a larger precision with the same scale).")
FIX = ("Use AlterColumnType(table=…, column=…, type=…, using=…): it changes the type in place when PostgreSQL "
       "needs no rewrite and otherwise online (a shadow column kept in sync by a trigger, a batched backfill, "
       "indexes built concurrently, one short swap), with a rollback that keeps the writes made meanwhile; "
       "when the running code cannot use the new type, AlterColumnType(…, online=True, new_name=…) keeps both "
       "columns, converted both ways by a trigger, until a later Contract(version=…).")


def _free(old: str | None, new: types.TypeInfo) -> bool:
    """Changes PostgreSQL makes without a rewrite (when the old type is known): the same prediction
    AlterColumnType plans with (:func:`dbdeploy.ops.column_types.in_place`)."""
    return old is not None and in_place(shape(old), shape(new.text)) is True


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
        if cmd.def_.raw_default is None and _free(column.type if column is not None else None, new):
            continue
        was = f" from {old}" if old is not None else ""
        yield f"{stmt.label()} (changes {table}.{cmd.name}{was} to {new})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
