"""TRUNCATE in RawSQL."""

from __future__ import annotations

from pglast import ast

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import table_name

ID = "ban-truncate"
SEVERITY = "error"
PROBLEM = ("TRUNCATE removes every row at once under an ACCESS EXCLUSIVE lock, keeps no copy for a rollback, and "
           "is not MVCC-safe: concurrent transactions with an older snapshot see the table empty.")
FIX = ("Delete the rows you mean to remove with a WHERE clause (in batches for large tables), keeping a copy the "
       "rollback can restore; allow it only for a table that is by design disposable (a staging table).")


def check(ctx: OpContext):
    for stmt in ctx.statements:
        node = stmt.node
        if isinstance(node, ast.TruncateStmt):
            existing = [table_name(r) for r in node.relations or () if not ctx.relation_is_new(r, stmt)]
            if existing:
                yield f"{stmt.label()} (empties {', '.join(existing)})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
