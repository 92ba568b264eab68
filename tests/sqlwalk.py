"""Read generated SQL the way PostgreSQL runs it, for the hostile-input and property tests.

``parse_everything`` parses a bundle file with pglast: every top-level statement and, inside each
``DO`` block, the PL/pgSQL body (``pglast.parse_plpgsql``) with each of its SQL statements and
expressions parsed again. ``bare_words`` lists the identifiers and keywords written without
double quotes (comments and string constants are skipped), so tests can check that names taken
from a spec only ever appear quoted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pglast import ast, parse_plpgsql, parse_sql
from pglast.enums import TransactionStmtKind
from pglast.parser import scan
from pglast.visitors import Visitor


@dataclass
class ParsedSql:
    statements: list = field(default_factory=list)   # top-level statement nodes, in order
    nested: list = field(default_factory=list)       # statement nodes parsed out of DO bodies
    do_bodies: list[str] = field(default_factory=list)

    @property
    def all_statements(self) -> list:
        return self.statements + self.nested


def parse_everything(text: str) -> ParsedSql:
    """Parse ``text`` and the PL/pgSQL inside its DO blocks; raises pglast's ParseError."""
    result = ParsedSql()
    for raw in parse_sql(text):
        result.statements.append(raw.stmt)
        if isinstance(raw.stmt, ast.DoStmt):
            body = next(d.arg.sval for d in raw.stmt.args if d.defname == "as")
            result.do_bodies.append(body)
            result.nested += plpgsql_statements(body)
    return result


def plpgsql_statements(body: str) -> list:
    """Every SQL statement and expression of a PL/pgSQL block body, parsed."""
    tag = "q"
    while f"${tag}$" in body:
        tag += "q"
    function = parse_plpgsql(f"DO ${tag}${body}${tag}$")
    parsed = []
    for query, mode in _expressions(function):
        if mode == 0:        # a whole statement (RAW_PARSE_DEFAULT)
            parsed += [r.stmt for r in parse_sql(query)]
            continue
        if mode >= 3:        # an assignment: target := expression
            query = query.split(":=", 1)[1] if ":=" in query else query.split("=", 1)[1]
        prefix = "SELECT NULL::" if mode == 1 else "SELECT "
        parsed += [r.stmt for r in parse_sql(prefix + query)]
    return parsed


def _expressions(node) -> list[tuple[str, int]]:
    found = []
    if isinstance(node, dict):
        expr = node.get("PLpgSQL_expr")
        if isinstance(expr, dict) and "query" in expr:
            found.append((expr["query"], expr.get("parseMode", 0)))
        for value in node.values():
            found += _expressions(value)
    elif isinstance(node, list):
        for value in node:
            found += _expressions(value)
    return found


def bare_words(text: str) -> list[str]:
    """Identifiers and keywords in ``text`` that are not double-quoted, lower-cased."""
    words = []
    for token in scan(text):
        word = text[token.start:token.end + 1]
        if token.name == "IDENT" and not word.startswith('"') or token.kind != "NO_KEYWORD":
            words.append(word.lower())
    return words


class _Relations(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def visit_RangeVar(self, ancestors, node):  # noqa: N802 (pglast visitor naming)
        self.names.add(node.relname)

    def visit_DropStmt(self, ancestors, node):  # noqa: N802
        for obj in node.objects or ():
            parts = obj if isinstance(obj, tuple | list) else (obj,)
            self.names |= {p.sval for p in parts if isinstance(p, ast.String)}


def relations(statements) -> set[str]:
    """Names of every relation the statements read, write, create or drop."""
    visitor = _Relations()
    for statement in statements:
        visitor(statement)
    return visitor.names


def transaction_balance(statements) -> tuple[int, int]:
    """How many BEGIN and COMMIT statements there are at the top level."""
    kinds = [s.kind for s in statements if isinstance(s, ast.TransactionStmt)]
    return (sum(k == TransactionStmtKind.TRANS_STMT_BEGIN for k in kinds),
            sum(k == TransactionStmtKind.TRANS_STMT_COMMIT for k in kinds))
