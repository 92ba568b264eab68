"""RawSQL bodies as a flat list of statements, including the ones PostgreSQL runs indirectly.

Top-level statements come from :func:`dbdeploy.sql.parse_statements`. A ``DO`` block or a
``CREATE FUNCTION``/``PROCEDURE`` in PL/pgSQL is parsed again with PostgreSQL's PL/pgSQL parser
(``pglast.parser.parse_plpgsql_json``): every embedded SQL statement (``PLpgSQL_stmt_execsql``) is
parsed and linted like a top-level one, and so is dynamic SQL (``EXECUTE``) whose text can be
reconstructed from string literals, ``format()`` and ``||`` (unknown parts become the placeholder
identifier ``dbdeploy_dynamic``). ``LANGUAGE sql`` function bodies are parsed as SQL.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from pglast import ast, parse_sql
from pglast.parser import ParseError, parse_plpgsql_json
from pglast.stream import RawStream

from dbdeploy.sql import SqlParseError, parse_statements, statement_needs_autocommit

PLACEHOLDER = "dbdeploy_dynamic"
_MAX_DEPTH = 6
_EXCERPT = 110


@dataclass(frozen=True)
class SqlStatement:
    """One statement of a RawSQL body, with where it sits and what ran before it."""

    node: object                  # the pglast statement node
    body: str                     # "forward" or "rollback"
    where: str                    # "statement 2", "statement 2, DO block", "statement 1, function s.f, EXECUTE"
    in_function: bool             # inside a function body: runs when called, not when created
    dynamic: bool                 # reconstructed from dynamic SQL (placeholders for unknown parts)
    group: object                 # statements with the same group run in the same transaction
    created_tables: CreatedBefore     # tables created earlier in the same body ("schema.table")
    created_indexes: CreatedBefore    # indexes created earlier in the same body ("schema.index")

    @property
    def text(self) -> str:
        return excerpt(self.node)

    def label(self) -> str:
        return f"{self.body}, {self.where}: {self.text}"


class CreatedBefore:
    """The names a body created before one statement: ``name in created`` tests membership.

    One walk records every name once, with the number of the statement that created it; each
    statement gets a view of that shared record up to its own number, so a body of n statements
    creating n tables takes O(n) memory, not a copy of the set per statement (O(n²): 20,000
    CREATE TABLEs once took over 20 GB).
    """

    __slots__ = ("_order", "_limit")

    def __init__(self, order: dict[str, int], limit: int) -> None:
        self._order = order
        self._limit = limit

    def __contains__(self, name: object) -> bool:
        return self._order.get(name, self._limit) < self._limit


def excerpt(node) -> str:
    try:
        text = RawStream()(node)
    except Exception:  # pglast cannot re-render every node; the kind of statement is enough then
        text = type(node).__name__
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def table_name(range_var) -> str:
    """``schema.table`` of a RangeVar (``public`` when unqualified, as the specs' own names)."""
    return f"{range_var.schemaname or 'public'}.{range_var.relname}"


def qualified_names(objects) -> list[str]:
    """Names in a DropStmt's ``objects`` (tuples of String nodes) as ``schema.name``."""
    names = []
    for obj in objects or ():
        parts = [p.sval for p in (obj if isinstance(obj, tuple | list) else (obj,)) if isinstance(p, ast.String)]
        if parts:
            names.append(".".join(parts[-2:]) if len(parts) > 1 else f"public.{parts[0]}")
    return names


def body_statements(text: str | None, body: str) -> list[SqlStatement]:
    """Every statement of a RawSQL body (forward or rollback), nested ones after their parent."""
    if not text:
        return []
    try:
        top = parse_statements(text)
    except SqlParseError:
        return []
    transactional = not any(statement_needs_autocommit(s) for s in top)
    walker = _Walker(body)
    for i, raw in enumerate(top, 1):
        walker.add(raw.stmt, f"statement {i}", group=0 if transactional else i, in_function=False,
                   dynamic=False, depth=0)
    return walker.out


def is_temporary(range_var) -> bool:
    return getattr(range_var, "relpersistence", "p") == "t"


class _Walker:
    def __init__(self, body: str) -> None:
        self.body = body
        self.out: list[SqlStatement] = []
        self.tables: dict[str, int] = {}     # name -> number of the statement that created it
        self.indexes: dict[str, int] = {}

    def add(self, node, where: str, *, group, in_function: bool, dynamic: bool, depth: int) -> None:
        self.out.append(SqlStatement(node, self.body, where, in_function, dynamic, group,
                                     CreatedBefore(self.tables, len(self.out)),
                                     CreatedBefore(self.indexes, len(self.out))))
        if not in_function:
            self._record(node)
        if depth >= _MAX_DEPTH:
            return
        if isinstance(node, ast.DoStmt):
            self._plpgsql(node, f"{where}, DO block", group=group, in_function=in_function, depth=depth,
                          language=_option(node.args, "language") or "plpgsql")
        elif isinstance(node, ast.CreateFunctionStmt):
            name = ".".join(p.sval for p in node.funcname if isinstance(p, ast.String))
            kind = "procedure" if node.is_procedure else "function"
            inner = f"{where}, {kind} {name}"
            language = (_option(node.options, "language") or "sql").lower()
            if node.sql_body is not None:
                for stmt in _flatten(node.sql_body):
                    self.add(stmt, inner, group=("function", inner), in_function=True, dynamic=False,
                             depth=depth + 1)
            elif language == "sql":
                source = _option(node.options, "as")
                for stmt in _parse_quietly(source):
                    self.add(stmt, inner, group=("function", inner), in_function=True, dynamic=False,
                             depth=depth + 1)
            elif language == "plpgsql":
                self._plpgsql(node, inner, group=("function", inner), in_function=True, depth=depth,
                              language="plpgsql")

    def _record(self, node) -> None:
        if isinstance(node, ast.CreateStmt):
            self.tables.setdefault(table_name(node.relation), len(self.out) - 1)
        elif isinstance(node, ast.CreateTableAsStmt) and node.into is not None:
            self.tables.setdefault(table_name(node.into.rel), len(self.out) - 1)
        elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            self.tables.setdefault(table_name(node.intoClause.rel), len(self.out) - 1)
        elif isinstance(node, ast.IndexStmt) and node.idxname:
            self.indexes.setdefault(f"{node.relation.schemaname or 'public'}.{node.idxname}", len(self.out) - 1)

    def _plpgsql(self, node, where: str, *, group, in_function: bool, depth: int, language: str) -> None:
        if language.lower() != "plpgsql":
            return
        tree = plpgsql_tree(node)
        if tree is None:
            return  # PostgreSQL reports a broken PL/pgSQL body when it runs; nothing to lint here
        for kind, query in plpgsql_queries(tree):
            dynamic = kind == "dynamic"
            text = dynamic_sql(query) if dynamic else query
            label = f"{where}, EXECUTE" if dynamic else where
            for stmt in _parse_quietly(text):
                self.add(stmt, label, group=group, in_function=in_function, dynamic=dynamic, depth=depth + 1)


def plpgsql_queries(tree) -> list[tuple[str, str]]:
    """(``"sql"`` | ``"dynamic"``, query text) for every SQL statement in a PL/pgSQL parse tree, in order."""
    found: list[tuple[str, str]] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "PLpgSQL_stmt_execsql":
                    query = _expr_query(item.get("sqlstmt"))
                    if query:
                        found.append(("sql", query))
                elif key == "PLpgSQL_stmt_dynexecute":
                    query = _expr_query(item.get("query"))
                    if query:
                        found.append(("dynamic", query))
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(tree)
    return found


def plpgsql_tree(node):
    """PostgreSQL's PL/pgSQL parse tree (JSON) of a DO block or function, or None if it does not parse."""
    try:
        return json.loads(parse_plpgsql_json(RawStream()(node)))
    except (ParseError, ValueError, TypeError):
        return None


def plpgsql_statement_kinds(tree) -> list[str]:
    """The kinds of PL/pgSQL statements in a parse tree (``PLpgSQL_stmt_raise``, …), in order."""
    kinds: list[str] = []

    def walk(value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key.startswith("PLpgSQL_stmt_"):
                    kinds.append(key)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(tree)
    return kinds


def _expr_query(value) -> str | None:
    if isinstance(value, dict):
        expr = value.get("PLpgSQL_expr")
        if isinstance(expr, dict) and isinstance(expr.get("query"), str):
            return expr["query"]
    return None


_FORMAT_SPEC = re.compile(r"%(?:(\d+)\$)?-?(?:\d+|\*(?:\d+\$)?)?([sIL%])")
_SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_$]*\Z")


def dynamic_sql(expression: str) -> str | None:
    """The SQL an EXECUTE expression builds, as far as it is made of literals; None if nothing is known."""
    try:
        statements = parse_sql("SELECT " + expression)
    except ParseError:
        return None
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        return None
    targets = statements[0].stmt.targetList or ()
    if len(targets) != 1:
        return None
    text, known = _evaluate(targets[0].val)
    return text if known else None


def _evaluate(node) -> tuple[str, bool]:
    """(text, whether any literal part was found)."""
    if isinstance(node, ast.A_Const) and isinstance(getattr(node, "val", None), ast.String):
        return node.val.sval, True
    if isinstance(node, ast.TypeCast):
        return _evaluate(node.arg)
    if isinstance(node, ast.A_Expr) and node.name and getattr(node.name[-1], "sval", "") == "||":
        left, lk = _evaluate(node.lexpr)
        right, rk = _evaluate(node.rexpr)
        return left + right, lk or rk
    if isinstance(node, ast.FuncCall):
        name = node.funcname[-1].sval.lower()
        args = node.args or ()
        if name == "format" and args:
            template, known = _evaluate(args[0])
            if known:
                return _format(template, [_evaluate(a) for a in args[1:]]), True
        if name == "quote_literal" or name == "quote_nullable":
            return f"'{PLACEHOLDER}'", False
        if name == "concat":
            parts = [_evaluate(a) for a in args]
            return "".join(p for p, _ in parts), any(k for _, k in parts)
    return PLACEHOLDER, False


def _format(template: str, args: list[tuple[str, bool]]) -> str:
    """``format()`` with the literal arguments filled in and placeholders for the others."""
    position = 0

    def fill(match: re.Match) -> str:
        nonlocal position
        kind = match.group(2)
        if kind == "%":
            return "%"
        index = int(match.group(1)) - 1 if match.group(1) else position
        position = index + 1
        value, known = args[index] if 0 <= index < len(args) else (PLACEHOLDER, False)
        if not known:
            value = PLACEHOLDER
        if kind == "L":
            return "'" + value.replace("'", "''") + "'"
        if kind == "I" and not _SIMPLE_NAME.match(value):
            return '"' + value.replace('"', '""') + '"'
        return value

    return _FORMAT_SPEC.sub(fill, template)


def _option(options, name: str) -> str | None:
    for option in options or ():
        if getattr(option, "defname", None) == name:
            arg = option.arg
            if isinstance(arg, tuple | list):
                arg = arg[0] if arg else None
            return getattr(arg, "sval", None)
    return None


def _flatten(value):
    if isinstance(value, tuple | list):
        for item in value:
            yield from _flatten(item)
    elif value is not None:
        yield value


def _parse_quietly(text: str | None) -> list:
    if not text or not text.strip():
        return []
    try:
        return [raw.stmt for raw in parse_sql(text)]
    except ParseError:
        return []
