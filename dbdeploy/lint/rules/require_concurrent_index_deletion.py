"""A plain DROP INDEX in RawSQL of an index that already exists."""

from __future__ import annotations

from pglast import ast
from pglast.enums import ObjectType

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import qualified_names

ID = "require-concurrent-index-deletion"
SEVERITY = "error"
PROBLEM = ("DROP INDEX without CONCURRENTLY takes an ACCESS EXCLUSIVE lock on the index's table: reads and writes "
           "wait for it, and it waits for every transaction already using the table.")
FIX = ("Use the DropIndex operation (DROP INDEX CONCURRENTLY, and its rollback rebuilds the index), or write "
       "DROP INDEX CONCURRENTLY IF EXISTS in a RawSQL of its own.")


def check(ctx: OpContext):
    for stmt in ctx.statements:
        node = stmt.node
        if isinstance(node, ast.DropStmt) and node.removeType == ObjectType.OBJECT_INDEX and not node.concurrent:
            existing = [n for n in qualified_names(node.objects) if n not in stmt.created_indexes]
            if existing:
                yield f"{stmt.label()} (drops existing index {', '.join(existing)})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
