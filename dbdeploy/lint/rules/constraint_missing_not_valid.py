"""ADD CONSTRAINT (FOREIGN KEY / CHECK) in RawSQL that validates existing rows under the lock."""

from __future__ import annotations

from pglast import ast
from pglast.enums import AlterTableType, ConstrType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.rules._sql import alter_table_commands

ID = "constraint-missing-not-valid"
SEVERITY = "error"
PROBLEM = ("Adding a FOREIGN KEY or CHECK constraint to an existing table checks every row while holding the lock "
           "the ALTER TABLE took (ACCESS EXCLUSIVE for a CHECK; SHARE ROW EXCLUSIVE on both tables for a foreign "
           "key), so writes wait for a full scan. VALIDATE CONSTRAINT in the same transaction as the ADD keeps "
           "that lock too.")
FIX = ("Use AddForeignKey / AddCheck (NOT VALID, then VALIDATE CONSTRAINT in its own transaction), or write "
       "ADD CONSTRAINT … NOT VALID and the VALIDATE CONSTRAINT in two separate RawSQL operations.")

_KINDS = {ConstrType.CONSTR_FOREIGN: "FOREIGN KEY", ConstrType.CONSTR_CHECK: "CHECK"}


def check(ctx: OpContext):
    added_not_valid: dict[tuple[str, str], object] = {}    # (table, constraint) → transaction group
    for stmt, node, table, cmd in alter_table_commands(ctx.statements):
        if ctx.relation_is_new(node.relation, stmt):
            continue
        if cmd.subtype == AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint):
            con = cmd.def_
            if con.contype not in _KINDS:
                continue
            if con.skip_validation:
                added_not_valid[(table, con.conname or "")] = (stmt.body, stmt.group)
            else:
                name = f" {con.conname}" if con.conname else ""
                yield f"{stmt.label()} (adds {_KINDS[con.contype]}{name} without NOT VALID)"
        elif cmd.subtype == AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef):
            for con in cmd.def_.constraints or ():
                if isinstance(con, ast.Constraint) and con.contype in _KINDS:
                    yield (f"{stmt.label()} (column {cmd.def_.colname} is added with an inline "
                           f"{_KINDS[con.contype]}, which cannot be NOT VALID)")
        elif (cmd.subtype == AlterTableType.AT_ValidateConstraint and cmd.name
              and added_not_valid.get((table, cmd.name)) == (stmt.body, stmt.group)):
            yield f"{stmt.label()} (validates {cmd.name} in the same transaction that added it)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
