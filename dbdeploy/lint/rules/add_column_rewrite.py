"""ADD COLUMN that makes PostgreSQL rewrite the whole table under ACCESS EXCLUSIVE."""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from dbdeploy.lint import types
from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands
from dbdeploy.ops import AddColumn
from dbdeploy.sql import is_probably_volatile

ID = "add-column-rewrite"
SEVERITY = "error"
PROBLEM = ("Adding a column with a serial type, an identity, a stored generated expression or (in RawSQL) a "
           "volatile default computes a value for every existing row inside the ALTER TABLE: the table is rewritten "
           "under an ACCESS EXCLUSIVE lock, so reads and writes wait for the whole rewrite.")
FIX = ("Use AddColumn with a plain type and a default (a volatile default is set for new rows and existing rows "
       "are filled in batches; for ids use bigint with DEFAULT nextval('a_sequence')), and compute generated "
       "values with a Backfill.")


def _rewrites(column: ast.ColumnDef) -> str | None:
    if column.typeName is not None and types.from_type_name(column.typeName).name in types.SERIALS:
        return "a serial type"
    for con in column.constraints or ():
        if not isinstance(con, ast.Constraint):
            continue
        if con.contype == ConstrType.CONSTR_IDENTITY:
            return "an identity"
        if con.contype == ConstrType.CONSTR_GENERATED:
            return "a stored generated expression"
        if con.contype == ConstrType.CONSTR_DEFAULT and con.raw_expr is not None and is_probably_volatile(con.raw_expr):
            return "a volatile default"
    return None


def check(ctx: OpContext):
    op = ctx.op
    if isinstance(op, AddColumn) and not ctx.is_new(op.table):
        info = types.from_text(op.column.type)
        if info is not None and info.name in types.SERIALS:
            yield f"column {op.table}.{op.column.name} is {info} (a serial type) on an existing table"
    for stmt, node, table, cmd in alter_table_commands(ctx.statements):
        if cmd.subtype != AlterTableType.AT_AddColumn or not isinstance(cmd.def_, ast.ColumnDef):
            continue
        if ctx.relation_is_new(node.relation, stmt):
            continue
        reason = _rewrites(cmd.def_)
        if reason:
            yield f"{stmt.label()} (column {table}.{cmd.def_.colname} with {reason})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
