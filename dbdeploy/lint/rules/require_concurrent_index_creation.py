"""A plain CREATE INDEX in RawSQL on a table that already exists."""

from __future__ import annotations

from pglast import ast

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import table_name

ID = "require-concurrent-index-creation"
SEVERITY = "error"
PROBLEM = ("CREATE INDEX without CONCURRENTLY holds a SHARE lock on the table for the whole build: every "
           "INSERT, UPDATE and DELETE waits until the index is built.")
FIX = ("Use the CreateIndex operation (CREATE INDEX CONCURRENTLY, outside a transaction, rebuilding an INVALID "
       "index a failed build left behind), or write CREATE INDEX CONCURRENTLY IF NOT EXISTS in a RawSQL of its own.")


def check(ctx: OpContext):
    for stmt in ctx.statements:
        node = stmt.node
        if isinstance(node, ast.IndexStmt) and not node.concurrent and not ctx.relation_is_new(node.relation, stmt):
            yield f"{stmt.label()} (on existing table {table_name(node.relation)})"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
