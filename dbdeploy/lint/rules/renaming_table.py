"""ALTER TABLE … RENAME TO in RawSQL."""

from __future__ import annotations

from pglast import ast
from pglast.enums import ObjectType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import table_name

ID = "renaming-table"
SEVERITY = "error"
PROBLEM = ("Renaming a table breaks every query that still uses the old name the moment it commits; old and new "
           "application versions cannot run side by side during the deployment.")
FIX = ("Use RenameTable(table, new_name, online=True): the table is renamed and an updatable view keeps the old "
       "name working; once no running application uses it, a later migration's Contract(version=...) drops the view.")


def check(ctx: OpContext):
    for stmt in ctx.forward:
        node = stmt.node
        if (isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_TABLE
                and node.relation is not None and not ctx.relation_is_new(node.relation, stmt)):
            yield f"{stmt.label()} (renames {table_name(node.relation)} to {node.newname})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
