"""ALTER COLUMN … SET NOT NULL in RawSQL without a validated CHECK (c IS NOT NULL)."""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands
from dbdeploy.sql.parse import not_null_column

ID = "set-not-null-without-check"
SEVERITY = "error"
PROBLEM = ("SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock (reads and writes wait) unless a "
           "validated CHECK (column IS NOT NULL) already proves that no row is NULL.")
FIX = ("Use SetNotNull(table=…, column=…) (dbdeploy adds CHECK (c IS NOT NULL) NOT VALID, validates it, sets NOT "
       "NULL without a scan and drops the check; its rollback drops the NOT NULL only if it set it); for a new "
       "column, AddColumn with nullable=False and a Backfill. Or do the same by hand: ADD CONSTRAINT … CHECK (c IS "
       "NOT NULL) NOT VALID and VALIDATE CONSTRAINT in earlier RawSQL operations, then SET NOT NULL.")


def check(ctx: OpContext):
    pending: dict[tuple[str, str, str], str] = {}    # (body, table, constraint) → column
    proven: set[tuple[str, str, str]] = set()        # (body, table, column)
    for stmt, node, table, cmd in alter_table_commands(ctx.statements):
        if cmd.subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            con = cmd.def_
            column = not_null_column(con.raw_expr) if con.contype == ConstrType.CONSTR_CHECK else None
            if column and con.skip_validation:
                pending[(stmt.body, table, con.conname or "")] = column
            elif column:
                proven.add((stmt.body, table, column))
        elif cmd.subtype == AlterTableType.AT_ValidateConstraint and cmd.name:
            column = pending.get((stmt.body, table, cmd.name))
            if column:
                proven.add((stmt.body, table, column))
        elif cmd.subtype == AlterTableType.AT_SetNotNull and cmd.name:
            if ctx.relation_is_new(node.relation, stmt) or (stmt.body, table, cmd.name) in proven:
                continue
            if ctx.before.has_not_null_check(table, cmd.name):
                continue
            yield f"{stmt.label()} (no validated CHECK ({cmd.name} IS NOT NULL) on {table})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
