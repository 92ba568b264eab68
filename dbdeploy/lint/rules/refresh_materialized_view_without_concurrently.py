"""REFRESH MATERIALIZED VIEW without CONCURRENTLY in RawSQL (issue 13)."""

from __future__ import annotations

from pglast import ast

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import table_name

ID = "refresh-materialized-view-without-concurrently"
SEVERITY = "error"
PROBLEM = ("REFRESH MATERIALIZED VIEW without CONCURRENTLY holds an ACCESS EXCLUSIVE lock on the view while its "
           "whole query runs: every SELECT of the view waits until the refresh is done (PostgreSQL docs, REFRESH "
           "MATERIALIZED VIEW).")
FIX = ("Use the RefreshMaterializedView operation (REFRESH … CONCURRENTLY outside a transaction, after checking the "
       "view is populated and has the unique index it needs), or allow it for a view nothing reads yet.")


def check(ctx: OpContext):
    for stmt in ctx.statements:
        node = stmt.node
        if isinstance(node, ast.RefreshMatViewStmt) and not node.concurrent and not node.skipData:
            yield f"{stmt.label()} (readers of {table_name(node.relation)} wait for the whole refresh)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
