"""A RawSQL whose rollback does nothing while its forward changes something."""

from __future__ import annotations

from pglast import ast, parse_sql
from pglast.enums import AlterTableType
from pglast.parser import ParseError
from pglast.visitors import Visitor

from dbdeploy.lint.context import OpContext
from dbdeploy.lint.model import Rule
from dbdeploy.lint.sqlwalk import plpgsql_queries, plpgsql_statement_kinds, plpgsql_tree
from dbdeploy.ops import RawSQL
from dbdeploy.sql import SqlParseError, parse_statements

ID = "missing-rollback"
SEVERITY = "error"
PROBLEM = ("The RawSQL rollback does nothing (only comments, SELECTs or a DO block that just raises a message), so "
           "rolling back reports success while the forward change stays in place.")
FIX = ("Write the SQL that undoes the forward change; if it truly cannot be undone, say so by allowing this rule "
       "with the reason, so the checklist tells the DBA before deploying.")

# Functions a SELECT in a rollback may call without doing anything lasting.
_READ_ONLY = frozenset({
    "now", "clock_timestamp", "statement_timestamp", "transaction_timestamp", "timeofday", "version",
    "current_setting", "current_database", "current_schema", "pg_backend_pid", "count", "pg_sleep", "format",
    "concat", "concat_ws", "coalesce", "nullif", "lower", "upper", "length", "to_char", "quote_ident",
    "quote_literal", "pg_typeof", "pg_table_size", "pg_relation_size", "pg_total_relation_size", "to_regclass",
    "exists", "string_agg", "array_agg", "min", "max", "sum", "avg",
})
# PL/pgSQL statements that change nothing by themselves (embedded SQL is checked separately).
_QUIET = frozenset({
    "PLpgSQL_stmt_block", "PLpgSQL_stmt_raise", "PLpgSQL_stmt_assert", "PLpgSQL_stmt_return",
    "PLpgSQL_stmt_assign", "PLpgSQL_stmt_if", "PLpgSQL_stmt_case", "PLpgSQL_stmt_loop", "PLpgSQL_stmt_while",
    "PLpgSQL_stmt_exit", "PLpgSQL_stmt_getdiag", "PLpgSQL_stmt_execsql",
})
_DATA_CHANGES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


class _Effects(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.acts = False

    def visit_FuncCall(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        if node.funcname[-1].sval.lower() not in _READ_ONLY:
            self.acts = True

    def visit(self, ancestors, node):
        if isinstance(node, _DATA_CHANGES):
            self.acts = True


def _select_acts(node) -> bool:
    if node.intoClause is not None:
        return True
    probe = _Effects()
    probe(node)
    return probe.acts


def acts(node) -> bool:
    """Whether a top-level statement can change anything (conservative: unknown statements do)."""
    if isinstance(node, ast.SelectStmt):
        return _select_acts(node)
    if isinstance(node, ast.VariableSetStmt | ast.VariableShowStmt):
        return False
    if isinstance(node, ast.DoStmt):
        tree = plpgsql_tree(node)
        if tree is None or not set(plpgsql_statement_kinds(tree)) <= _QUIET:
            return True
        for kind, query in plpgsql_queries(tree):
            if kind != "sql":
                return True
            try:
                inner = [raw.stmt for raw in parse_sql(query)]
            except ParseError:
                return True
            if any(acts(s) for s in inner):
                return True
        return False
    return True


def needs_undo(node) -> bool:
    """Whether a forward statement changes something a rollback would have to undo. Validating a
    constraint, ANALYZE / VACUUM and REINDEX change no schema or data."""
    if isinstance(node, ast.VacuumStmt | ast.ReindexStmt | ast.CheckPointStmt):
        return False
    if isinstance(node, ast.AlterTableStmt) and node.cmds and all(
            getattr(cmd, "subtype", None) == AlterTableType.AT_ValidateConstraint for cmd in node.cmds):
        return False
    return acts(node)


def _statements(text: str) -> list:
    try:
        return [raw.stmt for raw in parse_statements(text)]
    except SqlParseError:
        return []


def check(ctx: OpContext):
    op = ctx.op
    if not isinstance(op, RawSQL):
        return
    if any(needs_undo(s) for s in _statements(op.forward_sql)) and not any(
            acts(s) for s in _statements(op.rollback_sql)):
        shown = " ".join(op.rollback_sql.split())
        shown = shown if len(shown) <= 80 else shown[:79] + "…"
        yield f"rollback: {shown or '(empty)'} (does nothing, while the forward changes the database)"


RULE = Rule(ID, SEVERITY, PROBLEM, FIX, check)
