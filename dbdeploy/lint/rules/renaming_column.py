"""ALTER TABLE … RENAME COLUMN in RawSQL."""

from __future__ import annotations

from pglast import ast
from pglast.enums import ObjectType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import table_name

ID = "renaming-column"
SEVERITY = "error"
PROBLEM = ("Renaming a column breaks every query that still uses the old name the moment it commits; old and new "
           "application versions cannot run side by side during the deployment.")
FIX = ("Use RenameColumn(table, column, new_name, online=True): both names work (a trigger keeps them equal, "
       "existing rows are filled in batches); once no running application uses the old name, a later migration's "
       "Contract(version=...) drops it.")


def check(ctx: OpContext):
    for stmt in ctx.forward:
        node = stmt.node
        if (isinstance(node, ast.RenameStmt) and node.renameType == ObjectType.OBJECT_COLUMN
                and node.relation is not None and not ctx.relation_is_new(node.relation, stmt)):
            yield f"{stmt.label()} (renames {table_name(node.relation)}.{node.subname} to {node.newname})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
