"""Small helpers the RawSQL rules share."""

from __future__ import annotations

from collections.abc import Iterator

from pglast import ast

from dbdeploy.lint.sqlwalk import SqlStatement, table_name


def alter_table_commands(statements) -> Iterator[tuple[SqlStatement, ast.AlterTableStmt, str, object]]:
    """(statement, ALTER TABLE node, "schema.table", command) for every ALTER TABLE command."""
    for stmt in statements:
        node = stmt.node
        if isinstance(node, ast.AlterTableStmt) and node.relation is not None:
            for cmd in node.cmds or ():
                if isinstance(cmd, ast.AlterTableCmd):
                    yield stmt, node, table_name(node.relation), cmd
